// Structured logging: one JSON object per line on stdout with the seed's fields (level, time,
// service, version, environment, msg and per-event fields), or a readable line for a terminal.
// Every line passes a last scrub that masks anything shaped like a DataHub or webhook secret.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <spdlog/common.h>

namespace datahub::core {

/// One field of a log line. Strings are escaped; numbers and booleans are written bare.
struct log_field {
  std::string_view key;
  std::variant<std::string_view, int64_t, double, bool> value;

  log_field(std::string_view k, std::string_view v) : key(k), value(v) {}
  log_field(std::string_view k, const std::string& v) : key(k), value(std::string_view{v}) {}
  log_field(std::string_view k, const char* v) : key(k), value(std::string_view{v}) {}
  log_field(std::string_view k, int64_t v) : key(k), value(v) {}
  log_field(std::string_view k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  log_field(std::string_view k, unsigned v) : key(k), value(static_cast<int64_t>(v)) {}
  log_field(std::string_view k, double v) : key(k), value(v) {}
  log_field(std::string_view k, bool v) : key(k), value(v) {}
};

struct log_options {
  std::string level = "info";  ///< trace, debug, info, warn, error, fatal
  bool json = true;
  std::string environment = "development";
};

/// Installs the process-wide logger (asynchronous, stdout). Call once at startup.
void init_logging(const log_options& options);

/// Flushes and stops the logger; call before exit.
void shutdown_logging();

/// True when a line at `level` would be written (cheap check before building fields).
bool log_enabled(spdlog::level::level_enum level);

/// Writes one line.
void log(spdlog::level::level_enum level, std::string_view msg,
         std::initializer_list<log_field> fields = {});

inline void log_info(std::string_view msg, std::initializer_list<log_field> fields = {}) {
  log(spdlog::level::info, msg, fields);
}
inline void log_warn(std::string_view msg, std::initializer_list<log_field> fields = {}) {
  log(spdlog::level::warn, msg, fields);
}
inline void log_error(std::string_view msg, std::initializer_list<log_field> fields = {}) {
  log(spdlog::level::err, msg, fields);
}
inline void log_debug(std::string_view msg, std::initializer_list<log_field> fields = {}) {
  log(spdlog::level::debug, msg, fields);
}

/// Masks every substring shaped like a DataHub secret (`dh_live_...`, `dh_test_...`) or a
/// webhook secret (`whsec_...`) with `[REDACTED]`.
std::string scrub_secrets(std::string line);

/// True for field names that carry credentials (`authorization`, `x-api-key`, `apiKey`,
/// `secret`, `password`, ...), whose values are logged as `[REDACTED]`.
bool is_secret_field(std::string_view name);

/// Appends `s` to `out` as JSON string content (without quotes).
void append_json_escaped(std::string& out, std::string_view s);

}  // namespace datahub::core
