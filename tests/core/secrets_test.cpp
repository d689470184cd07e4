// Secret format, checksum and hashing.
#include "core/secrets.hpp"

#include <set>

#include <gtest/gtest.h>

namespace datahub::core {
namespace {

TEST(Secrets, GeneratedSecretPassesItsOwnFormatCheck) {
  for (int i = 0; i < 200; ++i) {
    const auto s = generate_secret(key_environment::live);
    ASSERT_EQ(s.size(), secret_length);
    ASSERT_EQ(s.rfind("dh_live_", 0), 0u);
    ASSERT_EQ(check_secret_format(s), key_environment::live) << s;
  }
  EXPECT_EQ(check_secret_format(generate_secret(key_environment::test)), key_environment::test);
}

TEST(Secrets, FlippedCharacterFailsTheChecksum) {
  auto s = generate_secret(key_environment::live);
  s[12] = s[12] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(check_secret_format(s));
}

TEST(Secrets, RefusesWrongPrefixLengthAndCharacters) {
  const auto s = generate_secret(key_environment::live);
  EXPECT_FALSE(check_secret_format(""));
  EXPECT_FALSE(check_secret_format(s + "x"));
  EXPECT_FALSE(check_secret_format(s.substr(0, s.size() - 1)));
  EXPECT_FALSE(check_secret_format("dh_prod_" + s.substr(8)));
  auto bad = s;
  bad[20] = '\xc3';
  EXPECT_FALSE(check_secret_format(bad));
  EXPECT_FALSE(check_secret_format("dh_live_initial_admin_key"));
}

TEST(Secrets, SecretsAreDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i)
    seen.insert(generate_secret(key_environment::live));
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Secrets, HashIsKeyedAndStable) {
  const auto s = generate_secret(key_environment::live);
  EXPECT_EQ(hash_secret("salt-one", s), hash_secret("salt-one", s));
  EXPECT_NE(hash_secret("salt-one", s), hash_secret("salt-two", s));
  EXPECT_EQ(hash_secret("salt-one", s).size(), 64u);
  EXPECT_EQ(hash_secret("salt-one", s).find(s), std::string::npos);
}

TEST(Secrets, HmacMatchesRfc4231TestCase2) {
  const auto mac = hmac_sha256("Jefe", "what do ya want for nothing?");
  EXPECT_EQ(base64_encode(mac), "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
}

TEST(Secrets, HashSecretIsHexHmacForShortAndLongSalts) {
  const auto s = generate_secret(key_environment::live);
  for (const std::string& salt :
       {std::string{"short"}, std::string(64, 'x'), std::string(100, 'y')}) {
    const auto raw = hmac_sha256(salt, s);
    std::string hex;
    for (unsigned char c : raw) {
      static constexpr char digits[] = "0123456789abcdef";
      hex.push_back(digits[c >> 4]);
      hex.push_back(digits[c & 15]);
    }
    EXPECT_EQ(hash_secret(salt, s), hex) << salt.size();
  }
  // Alternating salts on one thread still give each salt's own hash.
  EXPECT_NE(hash_secret("a", s), hash_secret("b", s));
  EXPECT_EQ(hash_secret("a", s), hash_secret("a", s));
}

TEST(Secrets, Base64RoundTrips) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\x00\xff\x10"}) {
    auto decoded = base64_decode(base64_encode(s));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, s);
  }
  EXPECT_FALSE(base64_decode("abc"));
}

}  // namespace
}  // namespace datahub::core
