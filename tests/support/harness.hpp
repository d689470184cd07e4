// Integration-test harness: a fresh PostgreSQL database per fixture, the real `datahub` binary
// as a child process on a loopback port, and a small blocking HTTP client.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include <nlohmann/json.hpp>

namespace datahub::testing {

/// DATAHUB_TEST_DATABASE_URL, or a test failure telling to run scripts/test.sh.
std::string admin_database_url();

/// A database created for one fixture and dropped afterwards.
class scratch_database {
 public:
  scratch_database();
  ~scratch_database();
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }
  /// Runs one SQL statement on this database; returns the first column of the first row.
  std::string exec(const std::string& sql) const;

 private:
  std::string name_;
  std::string url_;
};

struct http_response {
  int status = 0;
  std::map<std::string, std::string> headers;  ///< lower-case names
  std::string body;
  nlohmann::json json() const;
  std::string header(const std::string& lower_name) const;
};

/// One request on a fresh connection to 127.0.0.1:port.
http_response http_request(uint16_t port, const std::string& method, const std::string& target,
                           const std::map<std::string, std::string>& headers = {},
                           const std::string& body = {});

/// Sends raw bytes and returns whatever comes back until the server closes or `timeout` passes.
std::string raw_exchange(uint16_t port, const std::string& bytes,
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(3000));

/// A free TCP port on 127.0.0.1 (bound and released).
uint16_t free_port();

/// The `datahub` binary running `serve`.
class gateway_process {
 public:
  /// `env` adds to (or overrides) a minimal environment with PATH, PORT, BIND_ADDRESS,
  /// DATABASE_URL, API_KEY_SALT and a fast shutdown.
  gateway_process(const std::string& database_url, std::map<std::string, std::string> env = {});
  ~gateway_process();

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }

  /// Waits until GET /health answers 200; false on timeout or exit.
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(30));

  /// Sends `sig` and waits for the exit; the exit code, or -1 on timeout (then SIGKILL).
  int stop(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(30));

  /// Everything the process wrote to stdout and stderr so far.
  std::string output() const;

  const std::string& admin_key() const { return admin_key_; }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
  std::string log_path_;
  std::string admin_key_;
};

/// Runs the binary with arguments and environment; returns exit code and combined output.
struct command_result {
  int exit_code = -1;
  std::string output;
};
command_result run_datahub(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env);

}  // namespace datahub::testing
