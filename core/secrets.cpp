// Secret generation and hashing with OpenSSL.
#include "core/secrets.hpp"

#include <algorithm>
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

namespace {

// HMAC-SHA256 with the key's padded blocks absorbed once: the data plane hashes every presented
// secret with the same salt, and the one-shot HMAC() sets up a new context each time (OpenSSL 3
// spends most of a short HMAC there). Per thread, rebuilt when the salt changes.
class hmac_sha256_prefix {
 public:
  ~hmac_sha256_prefix() {
    EVP_MD_CTX_free(inner_);
    EVP_MD_CTX_free(outer_);
    EVP_MD_CTX_free(work_);
  }

  void digest(std::string_view key, std::string_view message, unsigned char out[32]) {
    if (!inner_ || key != key_)
      prepare(key);
    unsigned int len = 0;
    unsigned char inner_digest[32];
    EVP_MD_CTX_copy_ex(work_, inner_);
    EVP_DigestUpdate(work_, message.data(), message.size());
    EVP_DigestFinal_ex(work_, inner_digest, &len);
    EVP_MD_CTX_copy_ex(work_, outer_);
    EVP_DigestUpdate(work_, inner_digest, sizeof inner_digest);
    EVP_DigestFinal_ex(work_, out, &len);
  }

 private:
  void prepare(std::string_view key) {
    key_.assign(key);
    unsigned char block[64] = {};
    if (key.size() > sizeof block) {
      unsigned int len = 0;
      EVP_Digest(key.data(), key.size(), block, &len, EVP_sha256(), nullptr);
    } else {
      std::copy(key.begin(), key.end(), block);
    }
    unsigned char ipad[64];
    unsigned char opad[64];
    for (size_t i = 0; i < sizeof block; ++i) {
      ipad[i] = block[i] ^ 0x36;
      opad[i] = block[i] ^ 0x5c;
    }
    if (!inner_) {
      inner_ = EVP_MD_CTX_new();
      outer_ = EVP_MD_CTX_new();
      work_ = EVP_MD_CTX_new();
    }
    EVP_DigestInit_ex(inner_, EVP_sha256(), nullptr);
    EVP_DigestUpdate(inner_, ipad, sizeof ipad);
    EVP_DigestInit_ex(outer_, EVP_sha256(), nullptr);
    EVP_DigestUpdate(outer_, opad, sizeof opad);
  }

  std::string key_;
  EVP_MD_CTX* inner_ = nullptr;
  EVP_MD_CTX* outer_ = nullptr;
  EVP_MD_CTX* work_ = nullptr;
};

}  // namespace

std::string hash_secret(std::string_view salt, std::string_view secret) {
  static constexpr char hex[] = "0123456789abcdef";
  thread_local hmac_sha256_prefix hmac;
  unsigned char raw[32];
  hmac.digest(salt, secret, raw);
  std::string out(64, '0');
  for (size_t i = 0; i < sizeof raw; ++i) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 15];
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
