// The persistence actors against a real PostgreSQL: work off the caller's thread, transparent
// reconnection, the bounded queue, error mapping, metrics and shutdown.
#include "persistence/db_pool.hpp"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "persistence/key_store.hpp"
#include "tests/persistence/store_fixture.hpp"

namespace datahub::persistence {
namespace {

using pgtest::await;
using namespace std::chrono_literals;

class DbPoolTest : public pgtest::migrated_database_test {
 protected:
  db_result<done_t> ping(db_pool& pool) {
    return await<done_t>([&](auto cb) { pool.ping(cb); });
  }

  db_result<done_t> exec(db_pool& pool, const std::string& sql) {
    return await<done_t>([&](auto cb) {
      pool.query<done_t>(
          "test", "none",
          [sql](pqxx::connection& conn) {
            pqxx::work tx(conn);
            tx.exec(sql);
            tx.commit();
            return done_t{};
          },
          cb);
    });
  }

  bool wait_until(const std::function<bool()>& condition) {
    for (int i = 0; i < 500; ++i) {
      if (condition())
        return true;
      std::this_thread::sleep_for(10ms);
    }
    return condition();
  }
};

TEST_F(DbPoolTest, RunsWorkOffTheCallersThread) {
  pool_ = start_pool(pool_options());
  const auto caller = std::this_thread::get_id();
  auto r = await<bool>([&](auto cb) {
    pool_->query<bool>(
        "test", "none",
        [caller](pqxx::connection&) { return std::this_thread::get_id() != caller; }, cb);
  });
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_TRUE(r.value());
}

TEST_F(DbPoolTest, NextCallSucceedsAfterBackendsAreTerminated) {
  pool_ = start_pool(pool_options(2));
  key_store keys(pool_, core::rate_limit{100, 5000});

  // Two overlapping jobs open both workers' connections.
  std::thread other([&] { EXPECT_TRUE(exec(*pool_, "SELECT pg_sleep(0.2)").ok()); });
  EXPECT_TRUE(exec(*pool_, "SELECT pg_sleep(0.2)").ok());
  other.join();
  EXPECT_EQ(pool_->stats().total, 2u);

  EXPECT_EQ(db_.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE pid <> pg_backend_pid() AND datname = current_database()"),
            "2");
  ASSERT_TRUE(wait_until([&] {
    return db_.scalar(
               "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
               "datname = current_database()") == "0";
  }));

  // The first call after the cut is a write in a transaction.
  auto inserted = await<core::api_key>([&](auto cb) { keys.insert(make_key("after"), cb); });
  EXPECT_TRUE(inserted.ok()) << inserted.error().detail;
  for (int i = 0; i < 4; ++i) {
    const auto r = ping(*pool_);
    EXPECT_TRUE(r.ok()) << "ping " << i << ": " << r.error().detail;
  }
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM api_keys"), "1");
}

TEST_F(DbPoolTest, RecoversWhenTheDatabaseAppearsLater) {
  // The database does not exist yet: like a server that is down, every job fails fast.
  const auto late_name = db_.name() + "_late";
  auto opts = pool_options(1);
  opts.url = pgtest::with_database(pgtest::server_url(), late_name);
  auto pool = start_pool(opts);

  const auto start = std::chrono::steady_clock::now();
  const auto down = ping(*pool);
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().code, db_errc::unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_EQ(pool->stats().total, 0u);

  {
    pqxx::connection admin(pgtest::server_url());
    pqxx::nontransaction tx(admin);
    tx.exec("CREATE DATABASE " + late_name);
  }
  const auto up = ping(*pool);
  EXPECT_TRUE(up.ok()) << up.error().detail;
  pool->stop();
  pqxx::connection admin(pgtest::server_url());
  pqxx::nontransaction tx(admin);
  tx.exec("DROP DATABASE IF EXISTS " + late_name + " WITH (FORCE)");
}

TEST_F(DbPoolTest, UnreachableServerFailsFast) {
  auto opts = pool_options(1);
  opts.url = "postgresql://postgres@127.0.0.1:1/none";
  auto pool = start_pool(opts);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    const auto r = ping(*pool);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, db_errc::unavailable);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST_F(DbPoolTest, RejectsWhenTheQueueIsFull) {
  auto opts = pool_options(1);
  opts.queue_max = 2;
  opts.timeout = 30s;
  pool_ = start_pool(opts);

  std::promise<void> started;
  std::promise<void> release;
  auto released = release.get_future().share();
  pool_->run(
      "test", "none",
      [&](pqxx::connection&) {
        started.set_value();
        released.wait();
      },
      [](db_error e) { ADD_FAILURE() << "blocking job failed: " << e.detail; });
  started.get_future().wait();

  std::atomic<int> finished{0};
  for (int i = 0; i < 2; ++i)
    pool_->run(
        "test", "none", [&](pqxx::connection&) { ++finished; },
        [](db_error e) { ADD_FAILURE() << "queued job failed: " << e.detail; });
  EXPECT_EQ(pool_->stats().waiting, 2u);

  std::optional<db_errc> refused;
  pool_->run(
      "test", "none", [](pqxx::connection&) { ADD_FAILURE() << "ran past the bound"; },
      [&](db_error e) { refused = e.code; });
  ASSERT_TRUE(refused.has_value()) << "the refusal must be immediate";
  EXPECT_EQ(*refused, db_errc::overloaded);
  EXPECT_NE(metrics_.serialize().find("datahub_queue_rejections_total{queue=\"db\"} 1"),
            std::string::npos);

  release.set_value();
  EXPECT_TRUE(wait_until([&] { return finished == 2; }));
}

TEST_F(DbPoolTest, MapsDatabaseErrorsAndKeepsTheConnection) {
  auto opts = pool_options(1);
  opts.timeout = 300ms;
  pool_ = start_pool(opts);

  const auto start = std::chrono::steady_clock::now();
  auto r = exec(*pool_, "SELECT pg_sleep(3)");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, db_errc::timeout) << r.error().detail;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);

  r = exec(*pool_,
           "INSERT INTO events (id, type, data) VALUES ('evt_1', 't', '{}'), ('evt_1', 't', '{}')");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, db_errc::conflict) << r.error().detail;

  r = exec(*pool_, "SELECT no_such_column FROM events");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, db_errc::failed) << r.error().detail;

  EXPECT_TRUE(ping(*pool_).ok());
  EXPECT_EQ(pool_->stats().total, 1u);
}

TEST_F(DbPoolTest, ReportsSchemaCurrent) {
  pool_ = start_pool(pool_options());
  auto current = await<bool>([&](auto cb) { pool_->schema_current(cb); });
  ASSERT_TRUE(current.ok()) << current.error().detail;
  EXPECT_TRUE(current.value());

  ASSERT_TRUE(exec(*pool_, "DELETE FROM schema_migrations").ok());
  current = await<bool>([&](auto cb) { pool_->schema_current(cb); });
  ASSERT_TRUE(current.ok()) << current.error().detail;
  EXPECT_FALSE(current.value());
}

TEST_F(DbPoolTest, ExportsQueryDurationsAndPoolGauges) {
  pool_ = start_pool(pool_options(3));
  ASSERT_TRUE(ping(*pool_).ok());
  // The worker records the query and goes idle just after it hands the result over.
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text = metrics_.serialize();
    if (text.find("datahub_db_connection_pool{status=\"idle\"} 1") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(
      text.find("datahub_db_query_duration_seconds_count{operation=\"ping\",table=\"none\"} 1"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("datahub_db_connection_pool{status=\"total\"} 1"), std::string::npos);
  EXPECT_NE(text.find("datahub_db_connection_pool{status=\"idle\"} 1"), std::string::npos);
  EXPECT_NE(text.find("datahub_db_connection_pool{status=\"active\"} 0"), std::string::npos);
  EXPECT_NE(text.find("datahub_db_connection_pool{status=\"waiting\"} 0"), std::string::npos);
}

TEST_F(DbPoolTest, StopFinishesQueuedJobsThenRefuses) {
  pool_ = start_pool(pool_options(1));
  std::atomic<int> finished{0};
  for (int i = 0; i < 3; ++i)
    pool_->run(
        "test", "none",
        [&](pqxx::connection& conn) {
          pqxx::nontransaction tx(conn);
          tx.exec("SELECT pg_sleep(0.05)");
          ++finished;
        },
        [](db_error e) { ADD_FAILURE() << e.detail; });
  pool_->stop();
  EXPECT_EQ(finished, 3);
  EXPECT_EQ(pool_->stats().total, 0u);

  std::optional<db_errc> refused;
  pool_->run(
      "test", "none", [](pqxx::connection&) {}, [&](db_error e) { refused = e.code; });
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(*refused, db_errc::unavailable);
  pool_->stop();
}

}  // namespace
}  // namespace datahub::persistence
