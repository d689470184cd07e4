// The API key as the domain knows it: what is stored, what the admin API shows, and what the
// data plane checks. Never holds a usable secret, only its keyed hash. Domain layer; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/time.hpp"

namespace datahub::core {

/// Requests admitted per sliding minute and per sliding hour.
struct rate_limit {
  int64_t per_minute = 0;
  int64_t per_hour = 0;
};

/// Lifecycle of a key. `expired` is derived from `expires_at` when the key is read.
enum class key_status { active, revoked, expired };

std::string_view to_string(key_status status);
std::optional<key_status> parse_key_status(std::string_view text);

/// One stored API key.
struct api_key {
  std::string id;           ///< `key_` + ULID
  std::string name;         ///< 1 to 200 characters
  std::string prefix;       ///< first characters of the secret, for recognition
  std::string environment;  ///< `live` or `test`
  std::vector<std::string> scopes;
  std::optional<rate_limit> limits;  ///< nullopt: the configured defaults apply
  nlohmann::json metadata = nlohmann::json::object();
  std::string key_hash;  ///< hex HMAC-SHA256 of the secret with API_KEY_SALT
  timestamp created_at{};
  timestamp updated_at{};
  std::optional<timestamp> expires_at;
  std::optional<timestamp> last_used_at;
  std::optional<timestamp> revoked_at;

  /// Status at time `at`: revoked wins over expired.
  key_status status_at(timestamp at) const;

  /// True when every scope in `required` is held (an `admin` key holds no implicit scopes).
  bool has_scopes(const std::vector<std::string>& required) const;
};

/// The key object of the admin API (SPEC 4.1), without the secret. `defaults` fills
/// `rate_limit` when the key has none of its own.
nlohmann::json to_json(const api_key& key, const rate_limit& defaults, timestamp at);

}  // namespace datahub::core
