// The persistence actors: DATABASE_POOL_SIZE detached CAF actors, each on its own thread and
// owning one libpqxx connection, taking jobs from one bounded queue. Nothing that blocks on
// PostgreSQL runs on the caller's thread or on the actor scheduler's shared threads.
//
// A connection lost under the pool (server restart, pg_terminate_backend) is replaced on the
// next job; a job that hit the broken connection before committing is run once more on a fresh
// one. While PostgreSQL is down each job fails fast with `unavailable` after one connection
// attempt, so the pool recovers by itself when the server is back.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <caf/fwd.hpp>
#include <pqxx/connection>

#include "persistence/db_result.hpp"

namespace datahub::core {
class metrics;
}

namespace datahub::persistence {

struct db_pool_options {
  std::string url;                             ///< DATABASE_URL
  int size = 4;                                ///< DATABASE_POOL_SIZE: workers and connections
  size_t queue_max = 1000;                     ///< DATABASE_QUEUE_MAX: jobs waiting, at most
  std::chrono::milliseconds timeout{5000};     ///< DATABASE_TIMEOUT_MS: per statement, connect,
                                               ///< and longest wait in the queue
  std::chrono::milliseconds stop_wait{10000};  ///< how long stop() lets queued jobs finish
};

/// Connection counts as exported in datahub_db_connection_pool.
struct db_pool_stats {
  size_t total = 0;    ///< open connections
  size_t idle = 0;     ///< open connections without a job
  size_t active = 0;   ///< jobs running
  size_t waiting = 0;  ///< jobs queued
};

class db_pool {
 public:
  using options = db_pool_options;
  using work_fn = std::function<void(pqxx::connection&)>;
  using error_fn = std::function<void(db_error)>;

  /// Spawns the workers; connections open lazily, on each worker's first job, so the pool
  /// starts even while PostgreSQL is down.
  static std::shared_ptr<db_pool> start(caf::actor_system& sys, options opts, core::metrics& m);

  /// Calls stop().
  ~db_pool();

  db_pool(const db_pool&) = delete;
  db_pool& operator=(const db_pool&) = delete;

  /// Runs `work` on a worker's connection. `work` should write in one transaction: when the
  /// connection breaks before the commit it runs again on a fresh connection. A pqxx exception
  /// that leaves `work` becomes `on_error` (never both `work` completing and `on_error`). When
  /// the queue already holds queue_max jobs, or the pool is stopped, `on_error` runs at once on
  /// the caller's thread (`overloaded` / `unavailable`); otherwise on a worker's thread.
  /// `operation` and `table` label datahub_db_query_duration_seconds.
  void run(std::string_view operation, std::string_view table, work_fn work, error_fn on_error);

  /// run() for work that computes a value: `done` gets the value or the error, exactly once.
  template <class T>
  void query(std::string_view operation, std::string_view table,
             std::function<T(pqxx::connection&)> work, std::function<void(db_result<T>)> done);

  /// `SELECT 1`, for /health/ready.
  void ping(std::function<void(db_result<done_t>)> done);

  /// Whether every embedded migration is applied with a matching checksum, for /health/ready.
  void schema_current(std::function<void(db_result<bool>)> done);

  /// Refuses new jobs, lets queued ones finish for up to stop_wait, fails what is left with
  /// `unavailable`, and closes the connections. Must run before the actor system is destroyed
  /// (the system waits for its actors). Safe to call more than once.
  void stop();

  db_pool_stats stats() const;

  struct state;

 private:
  explicit db_pool(std::shared_ptr<state> s) : state_(std::move(s)) {}

  // Runs `done`, logging instead of propagating what it throws: a callback's failure must not
  // be mistaken for a database failure (which would call it a second time).
  static void deliver(const std::function<void()>& done);

  std::shared_ptr<state> state_;
};

template <class T>
void db_pool::query(std::string_view operation, std::string_view table,
                    std::function<T(pqxx::connection&)> work,
                    std::function<void(db_result<T>)> done) {
  run(
      operation, table,
      [work = std::move(work), done](pqxx::connection& conn) {
        auto value = work(conn);
        deliver([&] { done(db_result<T>(std::move(value))); });
      },
      [done](db_error error) { deliver([&] { done(db_result<T>(std::move(error))); }); });
}

}  // namespace datahub::persistence
