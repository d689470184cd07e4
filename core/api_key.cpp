// Key status and the admin API's key object.
#include "core/api_key.hpp"

#include <algorithm>

namespace datahub::core {

std::string_view to_string(key_status status) {
  switch (status) {
    case key_status::active:
      return "active";
    case key_status::revoked:
      return "revoked";
    case key_status::expired:
      return "expired";
  }
  return "active";
}

std::optional<key_status> parse_key_status(std::string_view text) {
  if (text == "active")
    return key_status::active;
  if (text == "revoked")
    return key_status::revoked;
  if (text == "expired")
    return key_status::expired;
  return std::nullopt;
}

key_status api_key::status_at(timestamp at) const {
  if (revoked_at)
    return key_status::revoked;
  if (expires_at && *expires_at <= at)
    return key_status::expired;
  return key_status::active;
}

bool api_key::has_scopes(const std::vector<std::string>& required) const {
  return std::all_of(required.begin(), required.end(), [this](const std::string& s) {
    return std::find(scopes.begin(), scopes.end(), s) != scopes.end();
  });
}

nlohmann::json to_json(const api_key& key, const rate_limit& defaults, timestamp at) {
  const auto opt_time = [](const std::optional<timestamp>& t) -> nlohmann::json {
    return t ? nlohmann::json(to_rfc3339(*t)) : nlohmann::json(nullptr);
  };
  const auto& limits = key.limits ? *key.limits : defaults;
  return {
      {"id", key.id},
      {"object", "api_key"},
      {"name", key.name},
      {"prefix", key.prefix},
      {"environment", key.environment},
      {"scopes", key.scopes},
      {"rate_limit", {{"per_minute", limits.per_minute}, {"per_hour", limits.per_hour}}},
      {"metadata", key.metadata},
      {"status", to_string(key.status_at(at))},
      {"created_at", to_rfc3339(key.created_at)},
      {"updated_at", to_rfc3339(key.updated_at)},
      {"expires_at", opt_time(key.expires_at)},
      {"last_used_at", opt_time(key.last_used_at)},
      {"revoked_at", opt_time(key.revoked_at)},
  };
}

}  // namespace datahub::core
