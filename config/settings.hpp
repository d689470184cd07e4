// The gateway's typed configuration, read once from the environment at startup and validated as
// a whole: every problem is reported, one line each. Nothing reads the environment afterwards.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/api_key.hpp"

namespace datahub::config {

/// DATAHUB_ENV: development, test or production.
enum class environment { development, test, production };
std::string_view to_string(environment env);

/// LOG_FORMAT: `json` lines (the default) or `pretty` for a terminal.
enum class log_format { json, pretty };

/// RATE_LIMIT_FAILURE_MODE: what limits do while Redis is unreachable.
enum class rate_limit_failure_mode { local, open, closed };

using millis = std::chrono::milliseconds;

struct settings {
  environment env = environment::development;
  std::string bind_address = "0.0.0.0";  ///< BIND_ADDRESS
  uint16_t port = 3000;                  ///< PORT

  std::string database_url;              ///< DATABASE_URL (required)
  int database_pool_size = 4;            ///< DATABASE_POOL_SIZE: connections, 1..64
  int database_queue_max = 1000;         ///< DATABASE_QUEUE_MAX: queued queries before 503
  millis database_timeout{5000};         ///< DATABASE_TIMEOUT_MS: per query, and connect timeout
  std::optional<std::string> redis_url;  ///< REDIS_URL; unset: limits are per instance

  std::string log_level = "info";  ///< LOG_LEVEL: trace, debug, info, warn, error
  log_format log_fmt = log_format::json;

  std::string api_key_salt;                  ///< API_KEY_SALT (required)
  std::optional<std::string> admin_api_key;  ///< ADMIN_API_KEY

  core::rate_limit default_limits{100, 5000};  ///< DEFAULT_RATE_LIMIT_MINUTE / _HOUR
  rate_limit_failure_mode limit_failure_mode = rate_limit_failure_mode::local;

  std::optional<std::string> routes_file;  ///< ROUTES_FILE

  size_t max_body_bytes = 10 * 1024 * 1024;  ///< MAX_BODY_BYTES
  size_t max_header_bytes = 16 * 1024;       ///< MAX_HEADER_BYTES
  millis header_timeout{10000};              ///< HEADER_TIMEOUT_MS
  millis idle_timeout{60000};                ///< IDLE_TIMEOUT_MS
  size_t max_pipelined = 16;                 ///< MAX_PIPELINED_REQUESTS per connection
  int io_threads = 0;                        ///< IO_THREADS; 0: one per core
  int actor_threads = 0;                     ///< ACTOR_THREADS; 0: one per core

  millis key_idle_timeout{60000};     ///< KEY_IDLE_TIMEOUT_MS: a key actor stops when idle
  millis key_refresh_interval{1000};  ///< KEY_REFRESH_INTERVAL_MS: poll for key changes
  millis usage_flush_interval{5000};  ///< USAGE_FLUSH_INTERVAL_MS
  size_t usage_buffer_max = 100000;   ///< USAGE_BUFFER_MAX: key-minutes held while PG is down

  millis webhook_timeout{30000};       ///< WEBHOOK_TIMEOUT_MS
  int webhook_max_retries = 5;         ///< WEBHOOK_MAX_RETRIES
  bool webhook_allow_private = false;  ///< WEBHOOK_ALLOW_PRIVATE_TARGETS

  millis shutdown_drain{5000};     ///< SHUTDOWN_DRAIN_MS: still serving after SIGTERM
  millis shutdown_timeout{30000};  ///< SHUTDOWN_TIMEOUT_MS: for requests in flight
};

/// Reads a variable; nullopt when unset. Tests pass a map-backed lookup.
using env_lookup = std::function<std::optional<std::string>(const std::string&)>;

/// The process environment.
env_lookup process_env();

/// Either settings or the list of problems (one human-readable line each, naming the variable
/// and what it should be).
struct load_result {
  std::optional<settings> value;
  std::vector<std::string> errors;
};

load_result load_settings(const env_lookup& env);

/// The seed's placeholder salt, refused in production.
inline constexpr const char* placeholder_salt = "your-secret-salt-here";

}  // namespace datahub::config
