// Harness implementation: libpqxx for databases, fork/exec for the binary, Beast for HTTP.
#include "tests/support/harness.hpp"

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <pqxx/pqxx>

#include "core/secrets.hpp"

namespace datahub::testing {

namespace net = boost::asio;
namespace bh = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

std::string random_suffix() {
  std::random_device rd;
  std::mt19937_64 gen{rd()};
  std::ostringstream out;
  out << std::hex << gen();
  return out.str();
}

std::string with_database(const std::string& url, const std::string& db) {
  // postgresql://user@host:port/name[?params]
  const auto scheme = url.find("://");
  const auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  const auto query = url.find('?');
  std::string base = slash == std::string::npos ? url : url.substr(0, slash);
  std::string params = query == std::string::npos ? "" : url.substr(query);
  return base + "/" + db + params;
}

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> environment_for(const std::map<std::string, std::string>& env) {
  std::vector<std::string> out;
  if (const char* path = std::getenv("PATH"))
    out.push_back(std::string{"PATH="} + path);
  for (const auto& [k, v] : env)
    out.push_back(k + "=" + v);
  return out;
}

pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& env,
            const std::string& log_path) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    std::vector<char*> argv;
    std::string binary = DATAHUB_BINARY;
    argv.push_back(binary.data());
    std::vector<std::string> args_copy = args;
    for (auto& a : args_copy)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_copy = env;
    std::vector<char*> envp;
    for (auto& e : env_copy)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    execve(binary.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  return pid;
}

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

}  // namespace

std::string admin_database_url() {
  const char* url = std::getenv("DATAHUB_TEST_DATABASE_URL");
  if (!url || !*url) {
    ADD_FAILURE() << "DATAHUB_TEST_DATABASE_URL is not set: run the tests through "
                     "scripts/test.sh, which starts a private PostgreSQL";
    return {};
  }
  return url;
}

scratch_database::scratch_database() {
  const auto admin = admin_database_url();
  name_ = "dh_it_" + random_suffix();
  pqxx::connection conn{admin};
  pqxx::nontransaction tx{conn};
  tx.exec("CREATE DATABASE " + name_);
  url_ = with_database(admin, name_);
}

scratch_database::~scratch_database() {
  try {
    pqxx::connection conn{admin_database_url()};
    pqxx::nontransaction tx{conn};
    tx.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = " +
            tx.quote(name_));
    tx.exec("DROP DATABASE IF EXISTS " + name_);
  } catch (const std::exception&) {
    // A database left behind is removed with the private cluster by scripts/test.sh.
  }
}

std::string scratch_database::exec(const std::string& sql) const {
  pqxx::connection conn{url_};
  pqxx::work tx{conn};
  auto r = tx.exec(sql);
  tx.commit();
  if (r.empty() || r.columns() == 0 || r[0][0].is_null())
    return {};
  return r[0][0].c_str();
}

nlohmann::json http_response::json() const {
  return nlohmann::json::parse(body, nullptr, false);
}

std::string http_response::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string{} : it->second;
}

http_response http_request(uint16_t port, const std::string& method, const std::string& target,
                           const std::map<std::string, std::string>& headers,
                           const std::string& body) {
  net::io_context ioc;
  tcp::socket socket{ioc};
  socket.connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), port});
  bh::request<bh::string_body> req{bh::string_to_verb(method), target, 11};
  req.set(bh::field::host, "127.0.0.1:" + std::to_string(port));
  for (const auto& [k, v] : headers)
    req.set(k, v);
  if (!body.empty() || method == "POST" || method == "PATCH" || method == "PUT") {
    req.body() = body;
    req.prepare_payload();
  }
  req.keep_alive(false);
  bh::write(socket, req);
  boost::beast::flat_buffer buffer;
  bh::response_parser<bh::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  parser.skip(method == "HEAD");
  bh::read(socket, buffer, parser);
  const auto& res = parser.get();
  http_response out;
  out.status = res.result_int();
  for (const auto& f : res)
    out.headers[lower(std::string{f.name_string()})] = std::string{f.value()};
  out.body = res.body();
  return out;
}

std::string raw_exchange(uint16_t port, const std::string& bytes,
                         std::chrono::milliseconds timeout) {
  net::io_context ioc;
  tcp::socket socket{ioc};
  socket.connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), port});
  net::write(socket, net::buffer(bytes));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  char buf[4096];
  while (true) {
    const auto n = ::recv(socket.native_handle(), buf, sizeof buf, 0);
    if (n <= 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

uint16_t free_port() {
  net::io_context ioc;
  tcp::acceptor acceptor{ioc, tcp::endpoint{net::ip::make_address("127.0.0.1"), 0}};
  return acceptor.local_endpoint().port();
}

gateway_process::gateway_process(const std::string& database_url,
                                 std::map<std::string, std::string> env)
    : port_(free_port()) {
  admin_key_ = core::generate_secret(core::key_environment::live);
  std::map<std::string, std::string> full{
      {"PORT", std::to_string(port_)},
      {"BIND_ADDRESS", "127.0.0.1"},
      {"DATABASE_URL", database_url},
      {"API_KEY_SALT", "integration-test-salt-0123456789abcdef"},
      {"ADMIN_API_KEY", admin_key_},
      {"DATAHUB_ENV", "test"},
      {"SHUTDOWN_DRAIN_MS", "100"},
      {"SHUTDOWN_TIMEOUT_MS", "5000"},
      {"IO_THREADS", "2"},
      {"ACTOR_THREADS", "2"},
      {"DATABASE_TIMEOUT_MS", "2000"},
  };
  for (auto& [k, v] : env)
    full[k] = v;
  log_path_ = ::testing::TempDir() + "datahub-" + random_suffix() + ".log";
  pid_ = spawn({"serve"}, environment_for(full), log_path_);
}

gateway_process::~gateway_process() {
  if (pid_ > 0 && stop(SIGTERM, std::chrono::seconds(10)) < 0)
    ADD_FAILURE() << "gateway did not stop; output:\n" << output();
  std::remove(log_path_.c_str());
}

bool gateway_process::wait_ready(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    try {
      if (http_request(port_, "GET", "/health").status == 200)
        return true;
    } catch (const std::exception&) {
      // not listening yet
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

int gateway_process::stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0)
    return -1;
  ::kill(pid_, sig);
  int code = wait_exit(pid_, timeout);
  if (code < 0) {
    ::kill(pid_, SIGKILL);
    wait_exit(pid_, std::chrono::seconds(5));
  }
  pid_ = -1;
  return code;
}

std::string gateway_process::output() const {
  return read_file(log_path_);
}

command_result run_datahub(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env) {
  const auto log = ::testing::TempDir() + "datahub-cmd-" + random_suffix() + ".log";
  const pid_t pid = spawn(args, environment_for(env), log);
  command_result out;
  out.exit_code = wait_exit(pid, std::chrono::seconds(60));
  out.output = read_file(log);
  std::remove(log.c_str());
  return out;
}

}  // namespace datahub::testing
