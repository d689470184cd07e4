// Parsing and validation of the environment into settings.
#include "config/settings.hpp"

#include <cerrno>
#include <cstdlib>
#include <limits>

#include "core/secrets.hpp"

namespace datahub::config {

namespace {

/// Collects errors while reading typed values.
class reader {
 public:
  explicit reader(const env_lookup& env) : env_(env) {}

  std::optional<std::string> raw(const std::string& name) {
    auto v = env_(name);
    if (v && v->empty())
      return std::nullopt;
    return v;
  }

  template <class Int>
  void integer(const std::string& name, Int& out, int64_t min, int64_t max) {
    auto v = raw(name);
    if (!v)
      return;
    errno = 0;
    char* end = nullptr;
    const long long parsed = std::strtoll(v->c_str(), &end, 10);
    if (errno != 0 || end == v->c_str() || *end != '\0' || parsed < min || parsed > max) {
      error(name + " must be an integer from " + std::to_string(min) + " to " +
            std::to_string(max) + " (got \"" + *v + "\")");
      return;
    }
    out = static_cast<Int>(parsed);
  }

  void duration(const std::string& name, millis& out, int64_t min, int64_t max) {
    int64_t ms = out.count();
    integer(name, ms, min, max);
    out = millis{ms};
  }

  void boolean(const std::string& name, bool& out) {
    auto v = raw(name);
    if (!v)
      return;
    if (*v == "true" || *v == "1")
      out = true;
    else if (*v == "false" || *v == "0")
      out = false;
    else
      error(name + " must be true or false (got \"" + *v + "\")");
  }

  void error(std::string line) { errors_.push_back(std::move(line)); }
  std::vector<std::string>& errors() { return errors_; }

 private:
  const env_lookup& env_;
  std::vector<std::string> errors_;
};

}  // namespace

std::string_view to_string(environment env) {
  switch (env) {
    case environment::development:
      return "development";
    case environment::test:
      return "test";
    case environment::production:
      return "production";
  }
  return "development";
}

env_lookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v ? std::optional<std::string>{v} : std::nullopt;
  };
}

load_result load_settings(const env_lookup& env) {
  reader r{env};
  settings s;
  constexpr int64_t max_ms = 24LL * 3600 * 1000;

  if (auto v = r.raw("DATAHUB_ENV")) {
    if (*v == "development")
      s.env = environment::development;
    else if (*v == "test")
      s.env = environment::test;
    else if (*v == "production")
      s.env = environment::production;
    else
      r.error("DATAHUB_ENV must be development, test or production (got \"" + *v + "\")");
  }
  if (auto v = r.raw("BIND_ADDRESS"))
    s.bind_address = *v;
  r.integer("PORT", s.port, 1, 65535);

  if (auto v = r.raw("DATABASE_URL"))
    s.database_url = *v;
  else
    r.error(
        "DATABASE_URL is required: a PostgreSQL URL such as "
        "postgresql://user:password@host:5432/datahub");
  r.integer("DATABASE_POOL_SIZE", s.database_pool_size, 1, 64);
  r.integer("DATABASE_QUEUE_MAX", s.database_queue_max, 1, 1000000);
  r.duration("DATABASE_TIMEOUT_MS", s.database_timeout, 100, max_ms);
  if (auto v = r.raw("REDIS_URL")) {
    if (v->rfind("redis://", 0) != 0 && v->rfind("rediss://", 0) != 0)
      r.error("REDIS_URL must start with redis:// (got \"" + *v + "\")");
    s.redis_url = *v;
  }

  if (auto v = r.raw("LOG_LEVEL")) {
    if (*v == "trace" || *v == "debug" || *v == "info" || *v == "warn" || *v == "error" ||
        *v == "fatal")
      s.log_level = *v;
    else
      r.error("LOG_LEVEL must be one of trace, debug, info, warn, error (got \"" + *v + "\")");
  }
  if (auto v = r.raw("LOG_FORMAT")) {
    if (*v == "json")
      s.log_fmt = log_format::json;
    else if (*v == "pretty")
      s.log_fmt = log_format::pretty;
    else
      r.error("LOG_FORMAT must be json or pretty (got \"" + *v + "\")");
  }

  if (auto v = r.raw("API_KEY_SALT")) {
    s.api_key_salt = *v;
    if (s.env == environment::production) {
      if (*v == placeholder_salt)
        r.error(
            "API_KEY_SALT is the example placeholder; set a random value of at least 32 "
            "characters (for example: openssl rand -base64 48)");
      else if (v->size() < 32)
        r.error("API_KEY_SALT must be at least 32 characters in production (got " +
                std::to_string(v->size()) + ")");
    }
  } else {
    r.error(
        "API_KEY_SALT is required: a random secret of at least 32 characters (for "
        "example: openssl rand -base64 48)");
  }
  if (auto v = r.raw("ADMIN_API_KEY")) {
    if (!core::check_secret_format(*v))
      r.error(
          "ADMIN_API_KEY is not a well-formed DataHub secret; make one with "
          "`datahub keys generate`");
    else
      s.admin_api_key = *v;
  }

  r.integer("DEFAULT_RATE_LIMIT_MINUTE", s.default_limits.per_minute, 1, 1000000000);
  r.integer("DEFAULT_RATE_LIMIT_HOUR", s.default_limits.per_hour, 1, 1000000000);
  if (s.default_limits.per_hour < s.default_limits.per_minute)
    r.error("DEFAULT_RATE_LIMIT_HOUR must be at least DEFAULT_RATE_LIMIT_MINUTE");
  if (auto v = r.raw("RATE_LIMIT_FAILURE_MODE")) {
    if (*v == "local")
      s.limit_failure_mode = rate_limit_failure_mode::local;
    else if (*v == "open")
      s.limit_failure_mode = rate_limit_failure_mode::open;
    else if (*v == "closed")
      s.limit_failure_mode = rate_limit_failure_mode::closed;
    else
      r.error("RATE_LIMIT_FAILURE_MODE must be local, open or closed (got \"" + *v + "\")");
  }

  if (auto v = r.raw("ROUTES_FILE"))
    s.routes_file = *v;

  r.integer("MAX_BODY_BYTES", s.max_body_bytes, 1024, 1LL << 32);
  r.integer("MAX_HEADER_BYTES", s.max_header_bytes, 1024, 1 << 20);
  r.duration("HEADER_TIMEOUT_MS", s.header_timeout, 100, max_ms);
  r.duration("IDLE_TIMEOUT_MS", s.idle_timeout, 100, max_ms);
  r.integer("MAX_PIPELINED_REQUESTS", s.max_pipelined, 1, 1024);
  r.integer("IO_THREADS", s.io_threads, 0, 256);
  r.integer("ACTOR_THREADS", s.actor_threads, 0, 256);

  r.duration("KEY_IDLE_TIMEOUT_MS", s.key_idle_timeout, 100, max_ms);
  r.duration("KEY_REFRESH_INTERVAL_MS", s.key_refresh_interval, 50, max_ms);
  r.duration("USAGE_FLUSH_INTERVAL_MS", s.usage_flush_interval, 50, max_ms);
  r.integer("USAGE_BUFFER_MAX", s.usage_buffer_max, 100, 100000000);

  r.duration("WEBHOOK_TIMEOUT_MS", s.webhook_timeout, 100, 300000);
  r.integer("WEBHOOK_MAX_RETRIES", s.webhook_max_retries, 0, 20);
  r.boolean("WEBHOOK_ALLOW_PRIVATE_TARGETS", s.webhook_allow_private);

  r.duration("SHUTDOWN_DRAIN_MS", s.shutdown_drain, 0, 600000);
  r.duration("SHUTDOWN_TIMEOUT_MS", s.shutdown_timeout, 0, 600000);

  load_result out;
  out.errors = std::move(r.errors());
  if (out.errors.empty())
    out.value = std::move(s);
  return out;
}

}  // namespace datahub::config
