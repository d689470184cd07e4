// Admin API input validation: each refusal names the field (`param`) and says what it should be.
#include "http/admin_validation.hpp"

#include <algorithm>
#include <cmath>

#include "config/settings.hpp"
#include "core/ids.hpp"
#include "core/text.hpp"

namespace datahub::http {

namespace {

using json = nlohmann::json;

api_error invalid_request(std::string message) {
  return api_error{api_errc::invalid_request, std::move(message), std::nullopt};
}

api_error field_error(std::string param, std::string message) {
  return api_error{api_errc::validation_error, std::move(message), std::move(param)};
}

api_error unknown_field(const std::string& name) {
  return field_error(name, "Unknown field '" + name + "'");
}

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ascii_lower(x) == ascii_lower(y);
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ascii_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_ascii_space(s.back()))
    s.remove_suffix(1);
  return s;
}

// Code points in well-formed UTF-8: every byte that is not a continuation byte starts one.
size_t utf8_length(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// The deepest nesting of arrays and objects in a JSON text, stopping early once past `limit`.
// Brackets inside strings do not count.
int nesting_depth(std::string_view text, int limit) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit)
        return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// Rate limits are JSON integers only: 1.0, "10", true and 1e3 are refused, like values out of
// range (2^63 arrives as an unsigned number and is refused here, never converted).
validated<int64_t> parse_limit(const json& value, const std::string& param) {
  const auto refuse = [&param] {
    return field_error(param,
                       param + " must be an integer from 1 to " + std::to_string(max_rate_limit));
  };
  if (value.is_number_unsigned()) {
    const auto v = value.get<uint64_t>();
    if (v < 1 || v > static_cast<uint64_t>(max_rate_limit))
      return refuse();
    return static_cast<int64_t>(v);
  }
  if (value.is_number_integer()) {
    const auto v = value.get<int64_t>();
    if (v < 1 || v > max_rate_limit)
      return refuse();
    return v;
  }
  return refuse();
}

// `{per_minute, per_hour}` with either field optional. Both given: per_hour >= per_minute.
validated<partial_limits> parse_limits_object(const json& value) {
  if (!value.is_object())
    return field_error("rate_limit", "rate_limit must be an object with per_minute and per_hour");
  partial_limits out;
  for (const auto& [field, v] : value.items()) {
    const std::string param = "rate_limit." + field;
    if (field != "per_minute" && field != "per_hour")
      return unknown_field(param);
    auto parsed = parse_limit(v, param);
    if (!parsed)
      return parsed.error();
    (field == "per_minute" ? out.per_minute : out.per_hour) = *parsed;
  }
  if (out.per_minute && out.per_hour && *out.per_hour < *out.per_minute)
    return field_error("rate_limit.per_hour",
                       "rate_limit.per_hour must be at least rate_limit.per_minute");
  return out;
}

// Fills the omitted fields from `base`. The order rule (per_hour >= per_minute) applies only to
// a pair the client states in one request: a partial limit combined with the defaults or the
// key's current limits is accepted as given, so "3 per hour" can be set on its own.
validated<core::rate_limit> merge_limits(const partial_limits& given, const core::rate_limit& base,
                                         const char* /*base_name*/) {
  return core::rate_limit{given.per_minute.value_or(base.per_minute),
                          given.per_hour.value_or(base.per_hour)};
}

validated<std::string> parse_name(const json& value) {
  const auto refuse = [] {
    return field_error("name", "name must be a string of 1 to " + std::to_string(max_name_chars) +
                                   " characters, not blank, without control characters");
  };
  if (!value.is_string())
    return refuse();
  const auto name = trim(value.get_ref<const std::string&>());
  if (name.empty() || utf8_length(name) > max_name_chars)
    return refuse();
  // Control characters (NUL above all, which PostgreSQL text cannot hold) have no place in a
  // name shown in lists and logs.
  const bool has_control = std::any_of(name.begin(), name.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  if (has_control)
    return refuse();
  return std::string{name};
}

bool is_valid_scope(std::string_view scope) {
  if (scope.empty() || scope.size() > max_scope_chars)
    return false;
  return std::all_of(scope.begin(), scope.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':' || c == '.' || c == '_' ||
           c == '-';
  });
}

validated<std::vector<std::string>> parse_scopes(const json& value) {
  if (!value.is_array())
    return field_error("scopes", "scopes must be an array of strings");
  std::vector<std::string> scopes;
  for (size_t i = 0; i < value.size(); ++i) {
    const auto& s = value[i];
    if (!s.is_string() || !is_valid_scope(s.get_ref<const std::string&>()))
      return field_error("scopes", "scopes[" + std::to_string(i) + "] must be 1 to " +
                                       std::to_string(max_scope_chars) +
                                       " characters of a-z, 0-9, ':', '.', '_' and '-'");
    const auto& scope = s.get_ref<const std::string&>();
    if (std::find(scopes.begin(), scopes.end(), scope) == scopes.end())
      scopes.push_back(scope);
    if (scopes.size() > max_scopes)
      return field_error("scopes",
                         "scopes may hold at most " + std::to_string(max_scopes) + " scopes");
  }
  return scopes;
}

// PostgreSQL's jsonb refuses the NUL character and has no infinities; both are refused here so
// they never turn into a database error. Depth is bounded by max_body_depth.
bool storable_in_jsonb(const json& value) {
  if (value.is_string())
    return value.get_ref<const std::string&>().find('\0') == std::string::npos;
  if (value.is_number_float())
    return std::isfinite(value.get<double>());
  if (value.is_object()) {
    for (const auto& [k, v] : value.items())
      if (k.find('\0') != std::string::npos || !storable_in_jsonb(v))
        return false;
  } else if (value.is_array()) {
    for (const auto& v : value)
      if (!storable_in_jsonb(v))
        return false;
  }
  return true;
}

validated<json> parse_metadata(const json& value) {
  if (!value.is_object())
    return field_error("metadata", "metadata must be a JSON object");
  if (!storable_in_jsonb(value))
    return field_error("metadata",
                       "metadata must not contain NUL characters or non-finite numbers");
  if (value.dump().size() > max_metadata_bytes)
    return field_error("metadata", "metadata must serialise to at most " +
                                       std::to_string(max_metadata_bytes) + " bytes");
  return value;
}

// The year 2200 keeps every accepted instant inside what the clock type and PostgreSQL can hold.
validated<core::timestamp> parse_expiry(const json& value, core::timestamp now) {
  const auto refuse = [] {
    return field_error("expires_at",
                       "expires_at must be an RFC 3339 timestamp in the future, before 2200");
  };
  if (!value.is_string())
    return refuse();
  const auto& text = value.get_ref<const std::string&>();
  if (text.size() < 4 ||
      !std::all_of(text.begin(), text.begin() + 4, [](char c) { return c >= '0' && c <= '9'; }))
    return refuse();
  if (std::stoi(text.substr(0, 4)) >= 2200)
    return refuse();
  const auto at = core::parse_rfc3339(text);
  if (!at || *at <= now)
    return refuse();
  return *at;
}

// Query parameters arrive as `name=value` pairs; both halves are percent-decoded.
struct query_param {
  std::string name;
  std::string value;
};

validated<std::vector<query_param>> split_query(std::string_view query) {
  std::vector<query_param> params;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty())
      continue;
    const auto eq = pair.find('=');
    auto name = percent_decode(pair.substr(0, eq));
    auto value =
        percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    if (!name || !value || !is_valid_utf8(*name) || !is_valid_utf8(*value))
      return invalid_request("Malformed query string");
    params.push_back(query_param{std::move(*name), std::move(*value)});
  }
  return params;
}

}  // namespace

bool patch_key_request::empty() const {
  return !name && !scopes && !limits && !metadata && !expires_at;
}

bool patch_key_request::needs_current_limits() const {
  return limits && *limits && (!(*limits)->per_minute || !(*limits)->per_hour);
}

bool is_json_content_type(std::string_view value) {
  const auto semi = value.find(';');
  if (!iequals(trim(value.substr(0, semi)), "application/json"))
    return false;
  auto params = semi == std::string_view::npos ? std::string_view{} : value.substr(semi + 1);
  while (!params.empty()) {
    const auto next = params.find(';');
    const auto param = trim(params.substr(0, next));
    params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
    const auto eq = param.find('=');
    if (eq == std::string_view::npos || !iequals(trim(param.substr(0, eq)), "charset"))
      continue;
    auto charset = trim(param.substr(eq + 1));
    if (charset.size() >= 2 && charset.front() == '"' && charset.back() == '"')
      charset = charset.substr(1, charset.size() - 2);
    if (!iequals(charset, "utf-8") && !iequals(charset, "utf8"))
      return false;
  }
  return true;
}

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t extra = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;  // a continuation byte first, an overlong 2-byte lead, or beyond U+10FFFF
    }
    if (i + extra >= text.size())
      return false;
    for (size_t k = 1; k <= extra; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const bool overlong = (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += extra + 1;
  }
  return true;
}

validated<json> parse_json_object(std::string_view body) {
  if (body.empty())
    return json::object();
  if (!is_valid_utf8(body))
    return invalid_request("Request body is not valid UTF-8");
  if (nesting_depth(body, max_body_depth) > max_body_depth)
    return invalid_request("Request body nests arrays and objects more than " +
                           std::to_string(max_body_depth) + " levels deep");
  json parsed;
  try {
    parsed = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  } catch (const json::exception&) {
    // Without exceptions the parser reports failures as a discarded value; this is a backstop.
    parsed = json(json::value_t::discarded);
  }
  if (parsed.is_discarded())
    return invalid_request("Request body is not valid JSON");
  if (!parsed.is_object())
    return invalid_request("Request body must be a JSON object");
  return parsed;
}

validated<create_key_request> validate_create(const json& body, const config::settings& settings,
                                              core::timestamp now) {
  static constexpr std::string_view known[] = {"name",       "scopes",   "rate_limit",
                                               "expires_at", "metadata", "environment"};
  for (const auto& [field, value] : body.items())
    if (std::find(std::begin(known), std::end(known), field) == std::end(known))
      return unknown_field(field);

  create_key_request out;
  const auto name = body.find("name");
  if (name == body.end())
    return field_error("name", "name is required");
  auto parsed_name = parse_name(*name);
  if (!parsed_name)
    return parsed_name.error();
  out.name = std::move(*parsed_name);

  if (const auto it = body.find("scopes"); it != body.end()) {
    auto scopes = parse_scopes(*it);
    if (!scopes)
      return scopes.error();
    out.scopes = std::move(*scopes);
  }

  // `null` is the same as leaving the field out: the key follows the configured defaults.
  if (const auto it = body.find("rate_limit"); it != body.end() && !it->is_null()) {
    auto given = parse_limits_object(*it);
    if (!given)
      return given.error();
    auto merged = merge_limits(*given, settings.default_limits, "the default");
    if (!merged)
      return merged.error();
    out.limits = *merged;
  }

  if (const auto it = body.find("expires_at"); it != body.end() && !it->is_null()) {
    auto at = parse_expiry(*it, now);
    if (!at)
      return at.error();
    out.expires_at = *at;
  }

  if (const auto it = body.find("metadata"); it != body.end()) {
    auto metadata = parse_metadata(*it);
    if (!metadata)
      return metadata.error();
    out.metadata = std::move(*metadata);
  }

  if (const auto it = body.find("environment"); it != body.end()) {
    const auto env = it->is_string()
                         ? core::parse_key_environment(it->get_ref<const std::string&>())
                         : std::nullopt;
    if (!env)
      return field_error("environment", "environment must be \"live\" or \"test\"");
    out.environment = *env;
  }
  return out;
}

validated<patch_key_request> validate_patch(const json& body, core::timestamp now) {
  static constexpr std::string_view known[] = {"name", "scopes", "rate_limit", "metadata",
                                               "expires_at"};
  for (const auto& [field, value] : body.items()) {
    if (std::find(std::begin(known), std::end(known), field) != std::end(known))
      continue;
    if (field == "id" || field == "environment" || field == "secret" || field == "prefix" ||
        field == "object" || field == "status" || field == "created_at" || field == "updated_at" ||
        field == "last_used_at" || field == "revoked_at")
      return field_error(field, field + " cannot be changed");
    return unknown_field(field);
  }

  patch_key_request out;
  if (const auto it = body.find("name"); it != body.end()) {
    auto name = parse_name(*it);
    if (!name)
      return name.error();
    out.name = std::move(*name);
  }

  if (const auto it = body.find("scopes"); it != body.end()) {
    auto scopes = parse_scopes(*it);
    if (!scopes)
      return scopes.error();
    out.scopes = std::move(*scopes);
  }

  if (const auto it = body.find("rate_limit"); it != body.end()) {
    if (it->is_null()) {
      out.limits.emplace(std::nullopt);
    } else {
      auto given = parse_limits_object(*it);
      if (!given)
        return given.error();
      out.limits.emplace(*given);
    }
  }

  if (const auto it = body.find("metadata"); it != body.end()) {
    auto metadata = parse_metadata(*it);
    if (!metadata)
      return metadata.error();
    out.metadata = std::move(*metadata);
  }

  if (const auto it = body.find("expires_at"); it != body.end()) {
    if (it->is_null()) {
      out.expires_at.emplace(std::nullopt);
    } else {
      auto at = parse_expiry(*it, now);
      if (!at)
        return at.error();
      out.expires_at.emplace(*at);
    }
  }
  return out;
}

validated<persistence::key_patch> resolve_patch(const patch_key_request& request,
                                                const std::optional<core::rate_limit>& current,
                                                const core::rate_limit& defaults) {
  persistence::key_patch patch;
  patch.name = request.name;
  patch.scopes = request.scopes;
  patch.metadata = request.metadata;
  patch.expires_at = request.expires_at;
  if (request.limits) {
    if (!*request.limits) {
      patch.limits.emplace(std::nullopt);
    } else {
      auto merged = merge_limits(**request.limits, current.value_or(defaults), "the key's");
      if (!merged)
        return merged.error();
      patch.limits.emplace(*merged);
    }
  }
  return patch;
}

std::optional<std::string> percent_decode(std::string_view text) {
  const auto hex = core::hex_digit_value;
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out.push_back(' ');
    } else if (text[i] == '%') {
      if (i + 2 >= text.size())
        return std::nullopt;
      const int hi = hex(text[i + 1]);
      const int lo = hex(text[i + 2]);
      if (hi < 0 || lo < 0)
        return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

validated<persistence::key_list_query> parse_list_query(std::string_view query) {
  auto params = split_query(query);
  if (!params)
    return params.error();

  persistence::key_list_query out;
  out.limit = default_list_limit;
  bool seen_limit = false;
  for (const auto& [name, value] : *params) {
    if (name != "limit" && name != "starting_after" && name != "status")
      return field_error(name, "Unknown query parameter '" + name + "'");
    const bool repeated = name == "limit"    ? seen_limit
                          : name == "status" ? out.status.has_value()
                                             : out.starting_after.has_value();
    if (repeated)
      return field_error(name, name + " may be given only once");

    if (name == "limit") {
      const auto refuse = [] {
        return field_error("limit",
                           "limit must be an integer from 1 to " + std::to_string(max_list_limit));
      };
      // At most three digits: anything longer is out of range, and no conversion can overflow.
      if (value.empty() || value.size() > 3 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return refuse();
      const int limit = std::stoi(value);
      if (limit < 1 || limit > max_list_limit)
        return refuse();
      out.limit = limit;
      seen_limit = true;
    } else if (name == "starting_after") {
      if (!core::is_valid_id("key", value))
        return field_error("starting_after", "starting_after must be an API key id (key_...)");
      out.starting_after = value;
    } else {
      const auto status = core::parse_key_status(value);
      if (!status)
        return field_error("status", "status must be active, revoked or expired");
      out.status = *status;
    }
  }
  return out;
}

}  // namespace datahub::http
