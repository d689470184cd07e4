// Usage counters through usage_store against a real PostgreSQL: batches sum into the stored
// rows and last_used_at only moves forward.
#include "persistence/usage_store.hpp"

#include <gtest/gtest.h>

#include "persistence/key_store.hpp"
#include "tests/persistence/store_fixture.hpp"

namespace datahub::persistence {
namespace {

using pgtest::await;

class UsageStoreTest : public pgtest::migrated_database_test {
 protected:
  void SetUp() override {
    migrated_database_test::SetUp();
    if (HasFatalFailure())
      return;
    pool_ = start_pool(pool_options());
    usage_ = std::make_unique<usage_store>(pool_);
    keys_ = std::make_unique<key_store>(pool_, core::rate_limit{100, 5000});
    auto r = await<core::api_key>([&](auto cb) { keys_->insert(make_key("used"), cb); });
    ASSERT_TRUE(r.ok()) << r.error().detail;
    key_ = r.value();
  }

  db_result<done_t> add(std::vector<usage_row> rows) {
    return await<done_t>([&](auto cb) { usage_->add(rows, cb); });
  }

  static usage_row row(const std::string& key_id, int64_t minute_ms, int64_t requests) {
    usage_row r;
    r.key_id = key_id;
    r.minute = core::from_unix_ms(minute_ms);
    r.requests = requests;
    r.status_2xx = requests - 1;
    r.status_4xx = 1;
    r.rate_limited = 1;
    r.bytes_in = requests * 10;
    r.bytes_out = requests * 100;
    return r;
  }

  std::string counters(int64_t minute_ms) {
    return db_.scalar(
        "SELECT concat_ws(',', requests, status_2xx, status_3xx, status_4xx, status_5xx, "
        "rate_limited, bytes_in, bytes_out) FROM api_key_usage WHERE key_id = '" +
        key_.id + "' AND minute = to_timestamp(" + std::to_string(minute_ms / 1000) + ")");
  }

  std::unique_ptr<usage_store> usage_;
  std::unique_ptr<key_store> keys_;
  core::api_key key_;
};

// 2024-01-15T10:30:00Z and the minute after.
constexpr int64_t minute1 = 1705314600000;
constexpr int64_t minute2 = minute1 + 60000;

TEST_F(UsageStoreTest, BatchesSumIntoStoredCounters) {
  // The same key-minute twice in one batch, and again in a later batch (another instance).
  ASSERT_TRUE(
      add({row(key_.id, minute1, 3), row(key_.id, minute1, 2), row(key_.id, minute2, 1)}).ok());
  EXPECT_EQ(counters(minute1), "5,3,0,2,0,2,50,500");
  EXPECT_EQ(counters(minute2), "1,0,0,1,0,1,10,100");

  const auto second = add({row(key_.id, minute1, 4)});
  ASSERT_TRUE(second.ok()) << second.error().detail;
  EXPECT_EQ(counters(minute1), "9,6,0,3,0,3,90,900");
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM api_key_usage"), "2");
}

TEST_F(UsageStoreTest, LastUsedAtOnlyMovesForward) {
  ASSERT_TRUE(add({row(key_.id, minute2, 1)}).ok());
  auto found =
      await<std::optional<core::api_key>>([&](auto cb) { keys_->find_by_id(key_.id, cb); });
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found.value()->last_used_at.has_value());
  EXPECT_EQ(*found.value()->last_used_at, core::from_unix_ms(minute2));
  // Usage does not count as a change to the key.
  EXPECT_EQ(found.value()->updated_at, key_.updated_at);

  // A late batch for an earlier minute leaves last_used_at where it is.
  ASSERT_TRUE(add({row(key_.id, minute1, 1)}).ok());
  found = await<std::optional<core::api_key>>([&](auto cb) { keys_->find_by_id(key_.id, cb); });
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found.value()->last_used_at, core::from_unix_ms(minute2));
}

TEST_F(UsageStoreTest, MinuteIsTruncatedAndUnknownKeysAreStillCounted) {
  ASSERT_TRUE(add({row(key_.id, minute1 + 12345, 1), row("key_unknown", minute1, 1)}).ok());
  EXPECT_EQ(counters(minute1), "1,0,0,1,0,1,10,100");
  EXPECT_EQ(db_.scalar("SELECT requests FROM api_key_usage WHERE key_id = 'key_unknown'"), "1");
}

TEST_F(UsageStoreTest, EmptyBatchSucceeds) {
  EXPECT_TRUE(add({}).ok());
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM api_key_usage"), "0");
}

}  // namespace
}  // namespace datahub::persistence
