// Secret generation and hashing with OpenSSL.
#include "core/secrets.hpp"

#include <array>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/random.hpp"

namespace datahub::core {

namespace {

constexpr char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

bool is_base62(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

uint32_t crc32(std::string_view data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k)
      crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::string checksum(std::string_view body) {
  uint32_t v = crc32(body);
  std::string out(secret_checksum_chars, '0');
  for (size_t i = secret_checksum_chars; i-- > 0;) {
    out[i] = base62[v % 62];
    v /= 62;
  }
  return out;
}

std::string_view env_prefix(key_environment env) {
  return env == key_environment::live ? "dh_live_" : "dh_test_";
}

}  // namespace

std::string_view to_string(key_environment env) {
  return env == key_environment::live ? "live" : "test";
}

std::optional<key_environment> parse_key_environment(std::string_view text) {
  if (text == "live")
    return key_environment::live;
  if (text == "test")
    return key_environment::test;
  return std::nullopt;
}

std::string generate_secret(key_environment env) {
  std::string out{env_prefix(env)};
  // Rejection sampling keeps every base62 character equally likely.
  while (out.size() < 8 + secret_random_chars) {
    std::array<uint8_t, 64> buf{};
    random_bytes(buf.data(), buf.size());
    for (auto b : buf) {
      if (b < 248 && out.size() < 8 + secret_random_chars)
        out.push_back(base62[b % 62]);
    }
  }
  out += checksum(out);
  return out;
}

std::optional<key_environment> check_secret_format(std::string_view secret) {
  if (secret.size() != secret_length)
    return std::nullopt;
  std::optional<key_environment> env;
  if (secret.substr(0, 8) == "dh_live_")
    env = key_environment::live;
  else if (secret.substr(0, 8) == "dh_test_")
    env = key_environment::test;
  else
    return std::nullopt;
  for (char c : secret.substr(8))
    if (!is_base62(c))
      return std::nullopt;
  const auto body = secret.substr(0, 8 + secret_random_chars);
  if (!constant_time_equal(checksum(body), secret.substr(8 + secret_random_chars)))
    return std::nullopt;
  return env;
}

std::string hmac_sha256(std::string_view key, std::string_view message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &len);
  return std::string(reinterpret_cast<char*>(digest), len);
}

std::string hash_secret(std::string_view salt, std::string_view secret) {
  static constexpr char hex[] = "0123456789abcdef";
  const auto raw = hmac_sha256(salt, secret);
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 15]);
  }
  return out;
}

std::string display_prefix(std::string_view secret) {
  return std::string{secret.substr(0, secret_display_prefix)};
}

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0)
    return std::nullopt;
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0)
    return std::nullopt;
  size_t len = static_cast<size_t>(n);
  if (!text.empty() && text.back() == '=')
    --len;
  if (text.size() > 1 && text[text.size() - 2] == '=')
    --len;
  out.resize(len);
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace datahub::core
