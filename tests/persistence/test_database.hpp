// Test support for the persistence suites: a throwaway database per test on the PostgreSQL
// server named by DATAHUB_TEST_DATABASE_URL (scripts/test.sh starts one and sets it), and a
// way to wait for the asynchronous store callbacks.
#pragma once

#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <utility>

#include <gtest/gtest.h>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/result>

#include "persistence/db_result.hpp"

namespace datahub::persistence::pgtest {

/// The server URL, or an empty string after recording a test failure that says what to do.
inline std::string server_url() {
  const char* url = std::getenv("DATAHUB_TEST_DATABASE_URL");
  if (url == nullptr || *url == '\0') {
    ADD_FAILURE() << "DATAHUB_TEST_DATABASE_URL is not set. The persistence tests need a real "
                     "PostgreSQL: run them through scripts/test.sh, which starts one and sets "
                     "the variable (e.g. postgresql://postgres@127.0.0.1:55432/postgres).";
    return {};
  }
  return url;
}

/// `url` pointing at database `name` instead of its own.
inline std::string with_database(const std::string& url, const std::string& name) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos)
    return url + " dbname=" + name;  // key=value form: a later key wins
  const auto query = url.find('?', scheme + 3);
  const auto slash = url.find('/', scheme + 3);
  const std::string tail = query == std::string::npos ? "" : url.substr(query);
  const auto end = slash != std::string::npos && (query == std::string::npos || slash < query)
                       ? slash
                       : (query == std::string::npos ? url.size() : query);
  return url.substr(0, end) + "/" + name + tail;
}

/// Creates a fresh, empty database in its constructor and drops it in its destructor.
class test_database {
 public:
  test_database() : server_(server_url()) {
    if (server_.empty())
      return;
    std::random_device rd;
    std::uniform_int_distribution<uint64_t> dist;
    static constexpr char hex[] = "0123456789abcdef";
    name_ = "datahub_t_";
    for (uint64_t v = dist(rd), i = 0; i < 16; ++i, v >>= 4)
      name_ += hex[v & 0xf];
    pqxx::connection conn(server_);
    pqxx::nontransaction tx(conn);
    tx.exec("CREATE DATABASE " + name_);  // the name is generated above, never user input
    url_ = with_database(server_, name_);
  }

  ~test_database() {
    if (name_.empty())
      return;
    try {
      pqxx::connection conn(server_);
      pqxx::nontransaction tx(conn);
      tx.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception& e) {
      ADD_FAILURE() << "could not drop test database " << name_ << ": " << e.what();
    }
  }

  test_database(const test_database&) = delete;
  test_database& operator=(const test_database&) = delete;

  bool ok() const { return !url_.empty(); }
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

  /// Runs one statement on a connection of its own and returns the first column of the first
  /// row as text ("" for no row or NULL).
  std::string scalar(const std::string& sql) const {
    pqxx::connection conn(url_);
    pqxx::nontransaction tx(conn);
    const auto rows = tx.exec(sql);
    if (rows.empty() || rows[0][0].is_null())
      return {};
    return rows[0][0].as<std::string>();
  }

 private:
  std::string server_;
  std::string name_;
  std::string url_;
};

/// Starts an asynchronous call with a callback and waits for its result (a `failed` error if
/// none arrives within `limit`).
template <class T, class Start>
db_result<T> await(Start&& start, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  auto promise = std::make_shared<std::promise<db_result<T>>>();
  auto future = promise->get_future();
  start([promise](db_result<T> r) { promise->set_value(std::move(r)); });
  if (future.wait_for(limit) != std::future_status::ready)
    return db_error{db_errc::failed, "the test gave up waiting for the callback"};
  return future.get();
}

}  // namespace datahub::persistence::pgtest
