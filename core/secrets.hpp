// API key secrets: generation, the format check that needs no database, and the keyed hash that
// is the only form ever stored. Domain layer; no I/O.
//
// Format: `dh_live_` or `dh_test_`, 32 base62 characters of randomness (190 bits), then a
// 6-character base62 CRC32 of everything before it. A typo or a truncated paste fails the
// checksum and is refused without a lookup; secret scanners can match the fixed shape.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace datahub::core {

/// `live` or `test`.
enum class key_environment { live, test };

std::string_view to_string(key_environment env);
std::optional<key_environment> parse_key_environment(std::string_view text);

constexpr size_t secret_random_chars = 32;
constexpr size_t secret_checksum_chars = 6;
constexpr size_t secret_length = 8 + secret_random_chars + secret_checksum_chars;
/// Characters of the secret shown as its `prefix` (`dh_live_` + 4), enough to recognise it.
constexpr size_t secret_display_prefix = 12;

/// A fresh secret from the OS random source.
std::string generate_secret(key_environment env);

/// The secret's environment when its shape and checksum are right; nullopt otherwise.
std::optional<key_environment> check_secret_format(std::string_view secret);

/// Lowercase hex HMAC-SHA256 of `secret` keyed with `salt`.
std::string hash_secret(std::string_view salt, std::string_view secret);

/// The first characters of the secret, stored and shown to identify it.
std::string display_prefix(std::string_view secret);

/// Standard base64 (with padding) of raw bytes.
std::string base64_encode(std::string_view bytes);
/// Decodes standard base64; nullopt when malformed.
std::optional<std::string> base64_decode(std::string_view text);

/// Raw HMAC-SHA256.
std::string hmac_sha256(std::string_view key, std::string_view message);

/// Constant-time equality for secrets and digests.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace datahub::core
