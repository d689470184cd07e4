// Worker actors, the bounded job queue, reconnection and the pool's metrics.
#include "persistence/db_pool.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>

#include <caf/actor_system.hpp>
#include <caf/blocking_actor.hpp>
#include <pqxx/except>
#include <pqxx/nontransaction>

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "persistence/migrator.hpp"
#include "persistence/pg_support.hpp"

namespace datahub::persistence {

namespace {

using steady = std::chrono::steady_clock;

struct job {
  std::string operation;
  std::string table;
  db_pool::work_fn work;
  db_pool::error_fn on_error;
  steady::time_point enqueued;
};

// Warnings about an unreachable database come from every job while it is down; one line per
// interval says enough.
constexpr auto warn_interval = std::chrono::seconds(10);

}  // namespace

struct db_pool::state {
  state(options o, core::metrics& m)
      : opts(std::move(o)),
        query_duration(m.db_query_duration_seconds),
        total(m.db_connection_pool.Add({{"status", "total"}})),
        idle(m.db_connection_pool.Add({{"status", "idle"}})),
        active_gauge(m.db_connection_pool.Add({{"status", "active"}})),
        waiting(m.db_connection_pool.Add({{"status", "waiting"}})),
        rejections(m.queue_rejections_total.Add({{"queue", "db"}})) {}

  const options opts;
  prometheus::Family<prometheus::Histogram>& query_duration;
  prometheus::Gauge& total;
  prometheus::Gauge& idle;
  prometheus::Gauge& active_gauge;
  prometheus::Gauge& waiting;
  prometheus::Counter& rejections;

  mutable std::mutex mtx;
  std::condition_variable work_cv;  // a job was queued, or the pool is stopping
  std::condition_variable done_cv;  // a worker ended
  std::deque<job> queue;
  bool stopping = false;
  bool stop_called = false;
  size_t open = 0;
  size_t active = 0;
  int alive = 0;
  steady::time_point last_warning{};

  // Call with mtx held.
  void publish() {
    total.Set(static_cast<double>(open));
    active_gauge.Set(static_cast<double>(active));
    idle.Set(static_cast<double>(open > active ? open - active : 0));
    waiting.Set(static_cast<double>(queue.size()));
  }

  void warn(std::string_view msg, const db_error& error) {
    {
      std::lock_guard<std::mutex> lock(mtx);
      const auto now = steady::now();
      if (last_warning != steady::time_point{} && now - last_warning < warn_interval)
        return;
      last_warning = now;
    }
    core::log_warn(msg, {{"error", to_string(error.code)}, {"detail", error.detail}});
  }
};

namespace {

void fail(const job& j, db_error error) {
  try {
    j.on_error(std::move(error));
  } catch (const std::exception& e) {
    core::log_error("Database error callback threw", {{"error", e.what()}});
  } catch (...) {
    core::log_error("Database error callback threw");
  }
}

// One worker's connection, opened lazily and dropped when it breaks.
class worker {
 public:
  explicit worker(std::shared_ptr<db_pool::state> s) : s_(std::move(s)) {}

  void run() {
    for (;;) {
      job j;
      {
        std::unique_lock<std::mutex> lock(s_->mtx);
        s_->work_cv.wait(lock, [&] { return s_->stopping || !s_->queue.empty(); });
        if (s_->queue.empty())
          break;
        j = std::move(s_->queue.front());
        s_->queue.pop_front();
        s_->publish();
      }
      execute(j);
    }
    drop_connection();
    std::lock_guard<std::mutex> lock(s_->mtx);
    --s_->alive;
    s_->done_cv.notify_all();
  }

 private:
  void execute(const job& j) {
    // A job that waited longer than a query may take has most likely been given up on.
    if (steady::now() - j.enqueued > s_->opts.timeout) {
      fail(j, {db_errc::timeout, "waited longer than the database timeout in the queue"});
      return;
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!ensure_connection(j))
        return;
      set_active(true);
      const auto start = steady::now();
      try {
        j.work(*conn_);
        set_active(false);
        s_->query_duration
            .Add({{"operation", j.operation}, {"table", j.table}}, core::metrics::db_buckets())
            .Observe(std::chrono::duration<double>(steady::now() - start).count());
        return;
      } catch (const pqxx::in_doubt_error&) {
        // The commit may have happened: running the work again could apply it twice.
        auto error = current_db_error();
        set_active(false);
        drop_if_broken();
        fail(j, std::move(error));
        return;
      } catch (...) {
        auto error = current_db_error();
        set_active(false);
        const bool lost = drop_if_broken() || error.code == db_errc::unavailable;
        if (lost) {
          drop_connection();
          if (attempt == 0)
            continue;
          s_->warn("Database connection lost", error);
        }
        fail(j, std::move(error));
        return;
      }
    }
  }

  bool ensure_connection(const job& j) {
    if (conn_ && conn_->is_open())
      return true;
    drop_connection();
    try {
      conn_ = open_connection(s_->opts.url, s_->opts.timeout, s_->opts.timeout);
    } catch (...) {
      auto error = current_db_error();
      error.code = db_errc::unavailable;
      s_->warn("Database unreachable", error);
      fail(j, std::move(error));
      return false;
    }
    std::lock_guard<std::mutex> lock(s_->mtx);
    ++s_->open;
    s_->publish();
    return true;
  }

  bool drop_if_broken() {
    if (conn_ && !conn_->is_open()) {
      drop_connection();
      return true;
    }
    return false;
  }

  void drop_connection() {
    if (!conn_)
      return;
    conn_.reset();
    std::lock_guard<std::mutex> lock(s_->mtx);
    --s_->open;
    s_->publish();
  }

  void set_active(bool active) {
    std::lock_guard<std::mutex> lock(s_->mtx);
    if (active)
      ++s_->active;
    else
      --s_->active;
    s_->publish();
  }

  std::shared_ptr<db_pool::state> s_;
  std::unique_ptr<pqxx::connection> conn_;
};

}  // namespace

std::shared_ptr<db_pool> db_pool::start(caf::actor_system& sys, options opts, core::metrics& m) {
  if (opts.size < 1)
    opts.size = 1;
  auto s = std::make_shared<state>(std::move(opts), m);
  {
    std::lock_guard<std::mutex> lock(s->mtx);
    s->alive = s->opts.size;
    s->publish();
  }
  for (int i = 0; i < s->opts.size; ++i) {
    // A blocking actor always gets a thread of its own.
    sys.spawn([s](caf::blocking_actor*) { worker(s).run(); });
  }
  return std::shared_ptr<db_pool>(new db_pool(std::move(s)));
}

db_pool::~db_pool() {
  stop();
}

void db_pool::run(std::string_view operation, std::string_view table, work_fn work,
                  error_fn on_error) {
  job j{std::string(operation), std::string(table), std::move(work), std::move(on_error),
        steady::now()};
  {
    std::unique_lock<std::mutex> lock(state_->mtx);
    if (state_->stopping) {
      lock.unlock();
      fail(j, {db_errc::unavailable, "database pool is stopped"});
      return;
    }
    if (state_->queue.size() >= state_->opts.queue_max) {
      lock.unlock();
      state_->rejections.Increment();
      fail(j, {db_errc::overloaded, "database queue is full"});
      return;
    }
    state_->queue.push_back(std::move(j));
    state_->publish();
  }
  state_->work_cv.notify_one();
}

void db_pool::ping(std::function<void(db_result<done_t>)> done) {
  query<done_t>(
      "ping", "none",
      [](pqxx::connection& conn) {
        pqxx::nontransaction tx(conn);
        tx.exec("SELECT 1");
        return done_t{};
      },
      std::move(done));
}

void db_pool::schema_current(std::function<void(db_result<bool>)> done) {
  query<bool>(
      "select", "schema_migrations",
      [](pqxx::connection& conn) { return persistence::schema_current(conn); }, std::move(done));
}

void db_pool::stop() {
  std::deque<job> left;
  {
    std::unique_lock<std::mutex> lock(state_->mtx);
    if (state_->stop_called)
      return;
    state_->stop_called = true;
    state_->stopping = true;
    state_->work_cv.notify_all();
    state_->done_cv.wait_for(lock, state_->opts.stop_wait, [&] { return state_->alive == 0; });
    // Workers still busy end after their current job; what they did not reach fails here.
    left.swap(state_->queue);
    state_->publish();
  }
  for (auto& j : left)
    fail(j, {db_errc::unavailable, "database pool stopped before the query ran"});
}

db_pool_stats db_pool::stats() const {
  std::lock_guard<std::mutex> lock(state_->mtx);
  db_pool_stats out;
  out.total = state_->open;
  out.active = state_->active;
  out.idle = state_->open > state_->active ? state_->open - state_->active : 0;
  out.waiting = state_->queue.size();
  return out;
}

void db_pool::deliver(const std::function<void()>& done) {
  try {
    done();
  } catch (const std::exception& e) {
    core::log_error("Database result callback threw", {{"error", e.what()}});
  } catch (...) {
    core::log_error("Database result callback threw");
  }
}

}  // namespace datahub::persistence
