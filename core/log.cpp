// The logger: a hand-written JSON line builder (the request log is on the hot path) on top of
// an asynchronous spdlog logger writing to stdout.
#include "core/log.hpp"

#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>

#include <unistd.h>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "core/time.hpp"

namespace datahub::core {

namespace {

struct log_state {
  std::shared_ptr<spdlog::logger> logger;
  bool json = true;
  std::string environment = "development";
};

log_state& state() {
  static log_state s;
  return s;
}

spdlog::level::level_enum parse_level(std::string_view level) {
  if (level == "trace")
    return spdlog::level::trace;
  if (level == "debug")
    return spdlog::level::debug;
  if (level == "warn")
    return spdlog::level::warn;
  if (level == "error")
    return spdlog::level::err;
  if (level == "fatal")
    return spdlog::level::critical;
  return spdlog::level::info;
}

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "fatal";
    default:
      return "info";
  }
}

bool is_base62(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

void append_value(std::string& out, const log_field& f, bool json) {
  if (is_secret_field(f.key)) {
    out += json ? "\"[REDACTED]\"" : "[REDACTED]";
    return;
  }
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string_view>) {
          if (json)
            out.push_back('"');
          append_json_escaped(out, v);
          if (json)
            out.push_back('"');
        } else if constexpr (std::is_same_v<T, bool>) {
          out += v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, double>) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.3f", v);
          out += buf;
        } else {
          out += std::to_string(v);
        }
      },
      f.value);
}

}  // namespace

void append_json_escaped(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c >= 0x80) {
          // Non-ASCII bytes are escaped one by one, so invalid UTF-8 from a client never
          // breaks the line's JSON.
          out += "\\u00";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
}

bool is_secret_field(std::string_view name) {
  // Case-insensitive substring search without allocating: this runs for every field of every
  // log line, the request log included.
  const auto contains = [name](std::string_view needle) {
    if (needle.size() > name.size())
      return false;
    for (size_t i = 0; i + needle.size() <= name.size(); ++i) {
      size_t j = 0;
      while (j < needle.size() &&
             std::tolower(static_cast<unsigned char>(name[i + j])) == needle[j])
        ++j;
      if (j == needle.size())
        return true;
    }
    return false;
  };
  for (std::string_view needle :
       {"authorization", "api-key", "apikey", "api_key", "secret", "password", "token"})
    if (contains(needle))
      return true;
  return false;
}

std::string scrub_secrets(std::string line) {
  for (const char* marker : {"dh_live_", "dh_test_", "whsec_"}) {
    const std::string_view m{marker};
    size_t pos = 0;
    while ((pos = line.find(m, pos)) != std::string::npos) {
      size_t end = pos + m.size();
      while (end < line.size() && (is_base62(line[end]) || line[end] == '+' || line[end] == '/' ||
                                   line[end] == '=' || line[end] == '_'))
        ++end;
      line.replace(pos, end - pos, "[REDACTED]");
      pos += 10;
    }
  }
  return line;
}

namespace {

// Collects lines in memory and writes them to stdout in large pieces: at most every 100 ms (the
// flusher thread), at once when 64 KiB are waiting, and at once for warnings and errors. A
// request's log line then costs a copy under a mutex, not a write(2) or a thread wake-up.
class buffered_stdout_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  buffered_stdout_sink() { buffer_.reserve(limit_ * 2); }
  ~buffered_stdout_sink() override { write_out(); }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    buffer_.append(formatted.data(), formatted.size());
    if (buffer_.size() >= limit_ || msg.level >= spdlog::level::warn)
      write_out();
  }

  void flush_() override { write_out(); }

 private:
  void write_out() {
    size_t done = 0;
    while (done < buffer_.size()) {
      const auto n = ::write(STDOUT_FILENO, buffer_.data() + done, buffer_.size() - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;  // stdout is gone; the lines are dropped rather than blocking the gateway
      done += static_cast<size_t>(n);
    }
    buffer_.clear();
  }

  static constexpr size_t limit_ = 64 * 1024;
  std::string buffer_;
};

/// Flushes the logger every 100 ms until stopped.
class log_flusher {
 public:
  explicit log_flusher(std::shared_ptr<spdlog::logger> logger) : logger_(std::move(logger)) {
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lock{mutex_};
      while (!stop_) {
        cv_.wait_for(lock, std::chrono::milliseconds(100));
        logger_->flush();
      }
    });
  }
  ~log_flusher() {
    {
      std::lock_guard<std::mutex> lock{mutex_};
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    logger_->flush();
  }

 private:
  std::shared_ptr<spdlog::logger> logger_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

std::unique_ptr<log_flusher>& flusher() {
  static std::unique_ptr<log_flusher> f;
  return f;
}

}  // namespace

void init_logging(const log_options& options) {
  auto& s = state();
  s.json = options.json;
  s.environment = options.environment;
  auto sink = std::make_shared<buffered_stdout_sink>();
  s.logger = std::make_shared<spdlog::logger>("datahub", sink);
  s.logger->set_pattern("%v");
  s.logger->set_level(parse_level(options.level));
  s.logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(s.logger);
  flusher() = std::make_unique<log_flusher>(s.logger);
}

void shutdown_logging() {
  flusher().reset();
  if (state().logger)
    state().logger->flush();
  spdlog::shutdown();
  state().logger.reset();
}

bool log_enabled(spdlog::level::level_enum level) {
  const auto& logger = state().logger;
  return logger ? logger->should_log(level) : level >= spdlog::level::info;
}

void log(spdlog::level::level_enum level, std::string_view msg,
         std::initializer_list<log_field> fields) {
  if (!log_enabled(level))
    return;
  auto& s = state();
  std::string line;
  line.reserve(256);
  const auto time = to_rfc3339(now());
  if (s.json) {
    line += "{\"level\":\"";
    line += level_name(level);
    line += "\",\"time\":\"";
    line += time;
    line += "\",\"service\":\"datahub-api\",\"version\":\"" DATAHUB_VERSION "\",\"environment\":\"";
    append_json_escaped(line, s.environment);
    line.push_back('"');
    for (const auto& f : fields) {
      line += ",\"";
      append_json_escaped(line, f.key);
      line += "\":";
      append_value(line, f, true);
    }
    line += ",\"msg\":\"";
    append_json_escaped(line, msg);
    line += "\"}";
  } else {
    line += time;
    line.push_back(' ');
    auto name = std::string{level_name(level)};
    for (auto& c : name)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    line += name;
    line.push_back(' ');
    line += msg;
    for (const auto& f : fields) {
      line.push_back(' ');
      line += f.key;
      line.push_back('=');
      append_value(line, f, false);
    }
  }
  line = scrub_secrets(std::move(line));
  if (s.logger)
    s.logger->log(level, spdlog::string_view_t{line.data(), line.size()});
  else
    std::fprintf(stderr, "%s\n", line.c_str());
}

}  // namespace datahub::core
