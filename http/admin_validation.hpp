// Validation of the admin API's input (SPEC 4, 4.1): request bodies, the Content-Type rule and
// list query strings. Pure functions of their arguments, so each refusal is unit-tested without a
// database; the handlers in admin_api.cpp only call them and forward the result.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/api_key.hpp"
#include "core/secrets.hpp"
#include "core/time.hpp"
#include "http/api_error.hpp"
#include "persistence/key_store.hpp"

namespace datahub::config {
struct settings;
}

namespace datahub::http {

/// A validated value, or the client error that refused the input.
template <class T>
class validated {
 public:
  validated(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  validated(api_error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const api_error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, api_error> v_;
};

/// Bounds of the key fields.
inline constexpr size_t max_name_chars = 200;
inline constexpr size_t max_scopes = 50;
inline constexpr size_t max_scope_chars = 64;
inline constexpr int64_t max_rate_limit = 1'000'000'000;
inline constexpr size_t max_metadata_bytes = 4096;
/// Deepest nesting of arrays and objects accepted in a body: enough for any metadata, and it
/// keeps the recursive walks over a parsed body (serialising, checking) shallow.
inline constexpr int max_body_depth = 32;
inline constexpr int max_list_limit = 100;
inline constexpr int default_list_limit = 20;

/// A valid `POST /api/v1/keys` body.
struct create_key_request {
  std::string name;                 ///< trimmed, 1..200 characters
  std::vector<std::string> scopes;  ///< duplicates removed, first occurrence order kept
  /// Set only when the body had `rate_limit`; fields it omitted hold the configured defaults.
  std::optional<core::rate_limit> limits;
  nlohmann::json metadata = nlohmann::json::object();
  std::optional<core::timestamp> expires_at;
  core::key_environment environment = core::key_environment::live;
};

/// The `rate_limit` of a PATCH body: each field may be omitted (the key's current value stays).
struct partial_limits {
  std::optional<int64_t> per_minute;
  std::optional<int64_t> per_hour;
};

/// A valid `PATCH /api/v1/keys/{id}` body. An absent optional leaves the field unchanged; for
/// `limits` and `expires_at` an empty inner optional is the body's `null` (back to the defaults,
/// no expiry).
struct patch_key_request {
  std::optional<std::string> name;
  std::optional<std::vector<std::string>> scopes;
  std::optional<std::optional<partial_limits>> limits;
  std::optional<nlohmann::json> metadata;
  std::optional<std::optional<core::timestamp>> expires_at;

  /// True when the body changed nothing (`{}`).
  bool empty() const;
  /// True when applying it needs the key's current limits (only one of the two was given).
  bool needs_current_limits() const;
};

/// True when `value` (a Content-Type header) is `application/json`, in any case, with optional
/// parameters; a `charset` parameter must be UTF-8.
bool is_json_content_type(std::string_view value);

/// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points above
/// U+10FFFF).
bool is_valid_utf8(std::string_view text);

/// Parses a request body that must be a JSON object; an empty body is `{}`. Refuses invalid
/// UTF-8, nesting deeper than max_body_depth, malformed JSON and any other JSON value with
/// `invalid_request`.
validated<nlohmann::json> parse_json_object(std::string_view body);

/// Validates a create body (already a JSON object) against the settings' default limits; `now`
/// decides what "in the future" means for `expires_at`.
validated<create_key_request> validate_create(const nlohmann::json& body,
                                              const config::settings& settings,
                                              core::timestamp now);

/// Validates a PATCH body (already a JSON object). When both limits are given their order is
/// checked here; otherwise `resolve_patch` checks it against the key's current limits.
validated<patch_key_request> validate_patch(const nlohmann::json& body, core::timestamp now);

/// The store's patch for `request`: partial limits are merged with `current` (the key's own
/// limits, or `defaults` when it has none) and the merged pair must keep per_hour >= per_minute.
/// `current` may be nullopt only when `request.needs_current_limits()` is false.
validated<persistence::key_patch> resolve_patch(const patch_key_request& request,
                                                const std::optional<core::rate_limit>& current,
                                                const core::rate_limit& defaults);

/// Decodes `%XX` escapes and `+` (a space, as in HTML forms); nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view text);

/// Parses the query string of `GET /api/v1/keys`: `limit` (1..100, default 20),
/// `starting_after` (a key id) and `status` (active, revoked, expired). Any other parameter, a
/// repeated one or a bad value is a validation error naming it.
validated<persistence::key_list_query> parse_list_query(std::string_view query);

}  // namespace datahub::http
