// Usage counting: per key and minute in memory, written in batches, kept while writes fail.
#include "actors/usage_recorder.hpp"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "config/settings.hpp"
#include "core/metrics.hpp"
#include "tests/actors/fake_sources.hpp"

namespace datahub::actors {
namespace {

using namespace std::chrono_literals;
using testing::fake_usage_sink;

class UsageRecorderTest : public ::testing::Test {
 protected:
  UsageRecorderTest() {
    // Long enough that only explicit flushes write, unless a test shortens it.
    settings_.usage_flush_interval = 60000ms;
  }

  usage_recorder& recorder() {
    if (!recorder_)
      recorder_ = std::make_unique<usage_recorder>(system_, sink_, settings_, metrics_);
    return *recorder_;
  }

  static const persistence::usage_row* find(const std::vector<persistence::usage_row>& rows,
                                            const std::string& key_id) {
    for (const auto& row : rows) {
      if (row.key_id == key_id)
        return &row;
    }
    return nullptr;
  }

  caf::actor_system_config cfg_;
  caf::actor_system system_{cfg_};
  core::metrics metrics_;
  config::settings settings_;
  std::shared_ptr<fake_usage_sink> sink_ = std::make_shared<fake_usage_sink>();
  std::unique_ptr<usage_recorder> recorder_;
};

TEST_F(UsageRecorderTest, WritesOneBatchWithOneRowPerKeyAndMinute) {
  recorder().record("key_a", 200, false, 10, 100);
  recorder().record("key_a", 201, false, 5, 50);
  recorder().record("key_a", 429, true, 1, 0);
  recorder().record("key_b", 502, false, 0, 7);
  recorder().record("key_b", 304, false, 0, 0);
  ASSERT_TRUE(recorder().flush(2000));

  auto batches = sink_->batches();
  ASSERT_EQ(batches.size(), 1u);
  // Both keys may straddle a minute boundary; sum what was written per key.
  int64_t a_requests = 0, a_2xx = 0, a_4xx = 0, a_limited = 0, a_in = 0, a_out = 0;
  int64_t b_requests = 0, b_3xx = 0, b_5xx = 0;
  for (const auto& row : batches[0]) {
    EXPECT_EQ(core::to_unix_ms(row.minute) % 60000, 0);
    if (row.key_id == "key_a") {
      a_requests += row.requests;
      a_2xx += row.status_2xx;
      a_4xx += row.status_4xx;
      a_limited += row.rate_limited;
      a_in += row.bytes_in;
      a_out += row.bytes_out;
    } else {
      b_requests += row.requests;
      b_3xx += row.status_3xx;
      b_5xx += row.status_5xx;
    }
  }
  EXPECT_LE(batches[0].size(), 4u);
  EXPECT_EQ(a_requests, 3);
  EXPECT_EQ(a_2xx, 2);
  EXPECT_EQ(a_4xx, 1);
  EXPECT_EQ(a_limited, 1);
  EXPECT_EQ(a_in, 16);
  EXPECT_EQ(a_out, 150);
  EXPECT_EQ(b_requests, 2);
  EXPECT_EQ(b_3xx, 1);
  EXPECT_EQ(b_5xx, 1);

  // Nothing new: a flush writes nothing.
  ASSERT_TRUE(recorder().flush(2000));
  EXPECT_EQ(sink_->batches().size(), 1u);
}

TEST_F(UsageRecorderTest, KeepsRowsWhileWritesFailAndMergesThem) {
  sink_->set_failing(true);
  recorder().record("key_a", 200, false, 1, 1);
  EXPECT_FALSE(recorder().flush(2000));
  EXPECT_EQ(metrics_.usage_buffer_entries.Add({}).Value(), 1);
  recorder().record("key_a", 200, false, 1, 1);
  sink_->set_failing(false);
  ASSERT_TRUE(recorder().flush(2000));

  auto batches = sink_->batches();
  ASSERT_EQ(batches.size(), 1u);
  int64_t requests = 0;
  for (const auto& row : batches[0])
    requests += row.requests;
  EXPECT_EQ(requests, 2);
  EXPECT_EQ(metrics_.usage_buffer_entries.Add({}).Value(), 0);
}

TEST_F(UsageRecorderTest, DropsTheOldestBeyondTheBufferBound) {
  settings_.usage_buffer_max = 2;
  sink_->set_failing(true);
  recorder().record("key_a", 200, false, 0, 0);
  recorder().record("key_b", 200, false, 0, 0);
  recorder().record("key_c", 200, false, 0, 0);
  EXPECT_FALSE(recorder().flush(2000));
  EXPECT_GE(metrics_.queue_rejections_total.Add({{"queue", "usage"}}).Value(), 1);
  sink_->set_failing(false);
  ASSERT_TRUE(recorder().flush(2000));
  auto batches = sink_->batches();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].size(), 2u);
  EXPECT_EQ(metrics_.queue_rejections_total.Add({{"queue", "usage"}}).Value(),
            3 - static_cast<double>(batches[0].size()));
}

TEST_F(UsageRecorderTest, FlushesPeriodicallyWithoutBeingAsked) {
  settings_.usage_flush_interval = 50ms;
  recorder().record("key_a", 200, false, 0, 0);
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (sink_->batches().empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  auto batches = sink_->batches();
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_NE(find(batches[0], "key_a"), nullptr);
  EXPECT_EQ(find(batches[0], "key_a")->requests, 1);
}

TEST_F(UsageRecorderTest, CountsFromManyThreads) {
  auto& r = recorder();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&r] {
      for (int i = 0; i < 1000; ++i)
        r.record("key_" + std::to_string(i % 10), 200, false, 1, 2);
    });
  }
  for (auto& th : threads)
    th.join();
  ASSERT_TRUE(recorder().flush(2000));
  int64_t requests = 0, bytes_out = 0;
  for (const auto& batch : sink_->batches()) {
    for (const auto& row : batch) {
      requests += row.requests;
      bytes_out += row.bytes_out;
    }
  }
  EXPECT_EQ(requests, 4000);
  EXPECT_EQ(bytes_out, 8000);
}

}  // namespace
}  // namespace datahub::actors
