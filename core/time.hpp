// Wall-clock timestamps as the API shows them: RFC 3339 in UTC with millisecond precision.
// Domain layer; no I/O.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace datahub::core {

using timestamp = std::chrono::system_clock::time_point;

/// Current wall-clock time.
inline timestamp now() {
  return std::chrono::system_clock::now();
}

/// Formats as `2024-01-15T10:30:00.000Z`.
std::string to_rfc3339(timestamp t);

/// Parses RFC 3339 (`Z` or a numeric offset, optional fraction); nullopt when malformed.
std::optional<timestamp> parse_rfc3339(std::string_view text);

/// Milliseconds since the Unix epoch.
inline int64_t to_unix_ms(timestamp t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline timestamp from_unix_ms(int64_t ms) {
  return timestamp{std::chrono::milliseconds{ms}};
}

}  // namespace datahub::core
