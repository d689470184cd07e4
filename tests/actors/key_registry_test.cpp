// The key registry and its key actors on a real actor system, with an in-memory key source.
#include "actors/key_registry.hpp"
#include "actors/key_actor.hpp"

#include <atomic>
#include <chrono>
#include <future>
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
using testing::fake_key_source;

core::api_key make_key(const std::string& hash, core::rate_limit limits) {
  core::api_key key;
  key.id = "key_" + hash;
  key.name = "test";
  key.prefix = "dh_test_abc";
  key.environment = "test";
  key.scopes = {"read"};
  key.limits = limits;
  key.key_hash = hash;
  key.created_at = core::now() - 1h;
  key.updated_at = core::now() - 1h;
  return key;
}

/// Waits for a condition, polling; false when it did not hold within `limit`.
template <class F>
bool eventually(F condition, std::chrono::milliseconds limit = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition())
      return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

class KeyRegistryTest : public ::testing::Test {
 protected:
  KeyRegistryTest() {
    settings_.key_idle_timeout = 200ms;
    settings_.key_refresh_interval = 50ms;
    settings_.database_timeout = 1000ms;
  }

  key_registry& registry(registry_options options = {}) {
    if (!registry_)
      registry_ =
          std::make_unique<key_registry>(system_, source_, settings_, metrics_, std::move(options));
    return *registry_;
  }

  admission admit(const std::string& hash, std::vector<std::string> scopes = {"read"},
                  bool count = true) {
    auto promise = std::make_shared<std::promise<admission>>();
    auto future = promise->get_future();
    registry().admit(hash, std::move(scopes), count,
                     [promise](admission a) { promise->set_value(std::move(a)); });
    EXPECT_EQ(future.wait_for(5s), std::future_status::ready);
    return future.get();
  }

  double counter(prometheus::Family<prometheus::Counter>& family,
                 const std::map<std::string, std::string>& labels) {
    return family.Add(labels).Value();
  }

  caf::actor_system_config cfg_;
  caf::actor_system system_{cfg_};
  core::metrics metrics_;
  config::settings settings_;
  std::shared_ptr<fake_key_source> source_ = std::make_shared<fake_key_source>();
  std::unique_ptr<key_registry> registry_;
};

TEST_F(KeyRegistryTest, AdmitsExactlyTheLimitUnderConcurrentRequests) {
  // A clock that stands still: the burst of 50 is all there is, however slowly the machine
  // answers the 300 requests (on the real clock one more would be admitted every 1.2 s).
  registry_options options;
  options.clock = [] { return int64_t{1'000'000'000'000}; };
  registry(options);
  source_->put(make_key("h1", {50, 5000}));
  std::atomic<int> answered{0}, admitted{0}, limited{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        registry_->admit("h1", {"read"}, true, [&](admission a) {
          if (a.result == admission::verdict::admitted)
            ++admitted;
          if (a.result == admission::verdict::rate_limited)
            ++limited;
          ++answered;
        });
      }
    });
  }
  for (auto& c : clients)
    c.join();
  ASSERT_TRUE(eventually([&] { return answered.load() == 300; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(answered.load(), 300);  // each exactly once
  EXPECT_EQ(admitted.load(), 50);
  EXPECT_EQ(limited.load(), 250);
  EXPECT_EQ(source_->lookups(), 1);
  EXPECT_EQ(
      counter(metrics_.rate_limit_hits_total, {{"key_id", "key_h1"}, {"limit_type", "minute"}}),
      250);
}

TEST_F(KeyRegistryTest, BatchedAdmissionsAnswerEachRequestOnceAndKeepTheLimit) {
  registry_options options;
  options.clock = [] { return int64_t{1'000'000'000'000}; };
  registry(options);
  source_->put(make_key("h1", {50, 5000}));
  source_->put(make_key("h2", {1000, 5000}));
  std::atomic<int> answered{0}, admitted_h1{0}, admitted_h2{0}, unknown{0};
  for (int b = 0; b < 10; ++b) {
    std::vector<admission_request> batch;
    for (int i = 0; i < 30; ++i) {
      const std::string hash = i % 3 == 0 ? "h2" : (i % 3 == 1 ? "h1" : "nope");
      batch.push_back(admission_request{hash, {"read"}, true, [&, hash](admission a) {
                                          if (a.result == admission::verdict::admitted)
                                            ++(hash == "h1" ? admitted_h1 : admitted_h2);
                                          if (a.result == admission::verdict::invalid_key)
                                            ++unknown;
                                          ++answered;
                                        }});
    }
    registry_->admit_all(std::move(batch));
  }
  ASSERT_TRUE(eventually([&] { return answered.load() == 300; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(answered.load(), 300);  // each exactly once
  EXPECT_EQ(admitted_h1.load(), 50);
  EXPECT_EQ(admitted_h2.load(), 100);
  EXPECT_EQ(unknown.load(), 100);
}

TEST_F(KeyRegistryTest, BatchAfterShutdownIsAnsweredUnavailable) {
  registry();
  source_->put(make_key("h1", {50, 5000}));
  std::atomic<int> unavailable{0};
  std::vector<admission_request> batch;
  for (int i = 0; i < 5; ++i)
    batch.push_back(admission_request{"h1", {"read"}, true, [&](admission a) {
                                        if (a.result == admission::verdict::unavailable)
                                          ++unavailable;
                                      }});
  registry_.reset();  // stops the registry's actors
  EXPECT_EQ(unavailable.load(), 0);
  // A batch whose message is dropped (its registry is gone) still answers every request.
  {
    auto holder = std::make_shared<admission_batch_holder>();
    holder->items = std::move(batch);
  }
  EXPECT_EQ(unavailable.load(), 5);
}

TEST_F(KeyRegistryTest, RateLimitedAnswerCarriesConsistentRetryAfter) {
  // SPEC 3.4's acceptance case on a monotonic clock the test moves: 5 per minute gives exactly
  // 5 admissions, then a refusal whose Retry-After is the emission interval (60 s / 5) and
  // equals the reset of the window the `RateLimit` header shows.
  constexpr int64_t second = 1'000'000'000;
  auto now = std::make_shared<std::atomic<int64_t>>(7'777 * second + 123'456'789);
  registry_options options;
  options.clock = [now] { return now->load(); };
  registry(options);
  source_->put(make_key("h1", {5, 5000}));
  for (int i = 0; i < 4; ++i)
    ASSERT_EQ(admit("h1").result, admission::verdict::admitted) << "request " << i;
  auto fifth = admit("h1");
  ASSERT_EQ(fifth.result, admission::verdict::admitted);
  EXPECT_EQ(fifth.minute.remaining, 0);
  EXPECT_STREQ(fifth.tightest().name, "minute");
  EXPECT_EQ(fifth.tightest().reset_seconds, 12);
  auto refused = admit("h1");
  ASSERT_EQ(refused.result, admission::verdict::rate_limited);
  EXPECT_TRUE(refused.limits_checked);
  EXPECT_STREQ(refused.limited_by, "minute");
  EXPECT_EQ(refused.retry_after_seconds, 12);
  EXPECT_EQ(refused.retry_after_seconds, refused.tightest().reset_seconds);
  EXPECT_STREQ(refused.tightest().name, "minute");
  EXPECT_EQ(refused.tightest().remaining, 0);
  ASSERT_TRUE(refused.key);
  EXPECT_EQ(refused.key->id, "key_h1");

  // The jump is longer than the idle timeout, so the actor stops and parks its state; its
  // successor goes on from it: still refused one second early, admitted after Retry-After.
  now->fetch_add(11 * second);
  ASSERT_TRUE(eventually([&] { return registry().live_actors() == 0; }, 2000ms));
  auto early = admit("h1");
  EXPECT_EQ(early.result, admission::verdict::rate_limited);
  EXPECT_EQ(early.retry_after_seconds, 1);
  now->fetch_add(second);
  EXPECT_EQ(admit("h1").result, admission::verdict::admitted);
  EXPECT_EQ(admit("h1").result, admission::verdict::rate_limited);
}

TEST_F(KeyRegistryTest, UnknownKeyIsInvalidAndRememberedBriefly) {
  EXPECT_EQ(admit("nope").result, admission::verdict::invalid_key);
  EXPECT_EQ(admit("nope").result, admission::verdict::invalid_key);
  EXPECT_EQ(source_->lookups(), 1);
  EXPECT_TRUE(eventually([&] { return registry().live_actors() == 0; }));
}

TEST_F(KeyRegistryTest, NegativeEntryExpiresAndACreatedKeyIsFound) {
  registry_options options;
  options.negative_ttl = 100ms;
  registry(options);
  EXPECT_EQ(admit("later").result, admission::verdict::invalid_key);
  source_->put(make_key("later", {10, 100}));
  EXPECT_EQ(admit("later").result, admission::verdict::invalid_key);  // still remembered
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(admit("later").result, admission::verdict::admitted);
  EXPECT_EQ(source_->lookups(), 2);
}

TEST_F(KeyRegistryTest, KeyCreatedThroughThisInstanceDropsTheNegativeEntry) {
  EXPECT_EQ(admit("new").result, admission::verdict::invalid_key);
  registry().key_changed(make_key("new", {10, 100}));
  EXPECT_EQ(admit("new").result, admission::verdict::admitted);
  EXPECT_EQ(source_->lookups(), 1);
}

TEST_F(KeyRegistryTest, DatabaseFailureIsUnavailableAndNotCached) {
  source_->put(make_key("h1", {10, 100}));
  source_->set_failing(true);
  EXPECT_EQ(admit("h1").result, admission::verdict::unavailable);
  source_->set_failing(false);
  EXPECT_EQ(admit("h1").result, admission::verdict::admitted);
  EXPECT_EQ(source_->lookups(), 2);
}

TEST_F(KeyRegistryTest, ChecksStatusThenScopesThenLimits) {
  auto expired = make_key("expired", {10, 100});
  expired.expires_at = core::now() - 1s;
  source_->put(expired);
  source_->put(make_key("h1", {1, 100}));
  EXPECT_EQ(admit("expired").result, admission::verdict::invalid_key);
  auto scoped = admit("h1", {"read", "write"});
  EXPECT_EQ(scoped.result, admission::verdict::insufficient_scope);
  EXPECT_FALSE(scoped.limits_checked);
  EXPECT_EQ(admit("h1").result, admission::verdict::admitted);
  EXPECT_EQ(admit("h1").result, admission::verdict::rate_limited);
  // Without counting (the admin API), limits are neither checked nor consumed.
  auto uncounted = admit("h1", {"read"}, false);
  EXPECT_EQ(uncounted.result, admission::verdict::admitted);
  EXPECT_FALSE(uncounted.limits_checked);
}

TEST_F(KeyRegistryTest, DefaultLimitsApplyToKeysWithoutTheirOwn) {
  settings_.default_limits = {2, 100};
  auto key = make_key("h1", {});
  key.limits.reset();
  source_->put(key);
  EXPECT_EQ(admit("h1").result, admission::verdict::admitted);
  auto second = admit("h1");
  EXPECT_EQ(second.minute.limit, 2);
  EXPECT_EQ(admit("h1").result, admission::verdict::rate_limited);
}

TEST_F(KeyRegistryTest, RevokedKeyIsRefusedOnTheNextRequest) {
  auto key = make_key("h1", {10, 100});
  source_->put(key);
  ASSERT_EQ(admit("h1").result, admission::verdict::admitted);
  key.revoked_at = core::now();
  key.updated_at = core::now();
  registry().key_changed(key);
  EXPECT_EQ(admit("h1").result, admission::verdict::invalid_key);
}

TEST_F(KeyRegistryTest, RaisedLimitTakesEffectAndKeepsUsage) {
  auto key = make_key("h1", {3, 100});
  source_->put(key);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(admit("h1").result, admission::verdict::admitted);
  ASSERT_EQ(admit("h1").result, admission::verdict::rate_limited);
  key.limits = core::rate_limit{5, 100};
  key.updated_at = core::now();
  registry().key_changed(key);
  auto fourth = admit("h1");
  EXPECT_EQ(fourth.result, admission::verdict::admitted);
  EXPECT_EQ(fourth.minute.limit, 5);
  EXPECT_EQ(admit("h1").result, admission::verdict::admitted);
  EXPECT_EQ(admit("h1").result, admission::verdict::rate_limited);
}

TEST_F(KeyRegistryTest, OlderRecordDoesNotReplaceANewerOne) {
  auto key = make_key("h1", {10, 100});
  source_->put(key);
  ASSERT_EQ(admit("h1").result, admission::verdict::admitted);
  auto revoked = key;
  revoked.revoked_at = core::now();
  revoked.updated_at = core::now();
  registry().key_changed(revoked);
  registry().key_changed(key);  // a stale copy, e.g. from a poll that overlapped
  EXPECT_EQ(admit("h1").result, admission::verdict::invalid_key);
}

TEST_F(KeyRegistryTest, ChangesMadeElsewhereArriveThroughThePoller) {
  auto key = make_key("h1", {10, 100});
  source_->put(key);
  registry().start();
  ASSERT_EQ(admit("h1").result, admission::verdict::admitted);
  key.revoked_at = core::now();
  key.updated_at = core::now();
  source_->put(key);  // another instance revoked it
  EXPECT_TRUE(
      eventually([&] { return admit("h1").result == admission::verdict::invalid_key; }, 1000ms));
  registry().stop();
}

TEST_F(KeyRegistryTest, ActorStopsAfterIdleTimeout) {
  source_->put(make_key("h1", {10, 100}));
  ASSERT_EQ(admit("h1").result, admission::verdict::admitted);
  EXPECT_EQ(registry().live_actors(), 1u);
  EXPECT_EQ(metrics_.key_actors.Add({}).Value(), 1);
  EXPECT_TRUE(eventually([&] { return registry().live_actors() == 0; }, 2000ms));
  EXPECT_EQ(metrics_.key_actors.Add({}).Value(), 0);
  // The record stayed cached: using the key again needs no lookup.
  EXPECT_EQ(admit("h1").result, admission::verdict::admitted);
  EXPECT_EQ(source_->lookups(), 1);
}

TEST_F(KeyRegistryTest, RateLimitStateSurvivesAnIdleStop) {
  source_->put(make_key("h1", {600, 3}));
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(admit("h1").result, admission::verdict::admitted);
  ASSERT_TRUE(eventually([&] { return registry().live_actors() == 0; }, 2000ms));
  auto after = admit("h1");
  EXPECT_EQ(after.result, admission::verdict::rate_limited);
  EXPECT_STREQ(after.limited_by, "hour");
}

TEST_F(KeyRegistryTest, RequestsRacingWithIdleStopAreAllAnswered) {
  settings_.key_idle_timeout = 10ms;
  source_->put(make_key("h1", {1000000, 100000000}));
  registry();
  std::atomic<int> answered{0}, admitted{0};
  int sent = 0;
  for (int round = 0; round < 60; ++round) {
    for (int i = 0; i < 20; ++i, ++sent) {
      registry_->admit("h1", {"read"}, true, [&](admission a) {
        if (a.result == admission::verdict::admitted)
          ++admitted;
        ++answered;
      });
    }
    // Sleeps around the idle timeout, so requests keep landing as the actor decides to stop.
    std::this_thread::sleep_for(std::chrono::milliseconds(8 + round % 8));
  }
  ASSERT_TRUE(eventually([&] { return answered.load() == sent; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(answered.load(), sent);
  EXPECT_EQ(admitted.load(), sent);
}

TEST_F(KeyRegistryTest, QueueWhileLoadingIsBounded) {
  registry_options options;
  options.pending_max = 4;
  registry(options);
  source_->put(make_key("h1", {100, 1000}));
  source_->jobs().hold();
  std::atomic<int> admitted{0}, unavailable{0};
  for (int i = 0; i < 10; ++i) {
    registry_->admit("h1", {"read"}, true, [&](admission a) {
      if (a.result == admission::verdict::admitted)
        ++admitted;
      if (a.result == admission::verdict::unavailable)
        ++unavailable;
    });
  }
  EXPECT_TRUE(eventually([&] { return unavailable.load() == 6; }));
  source_->jobs().release();
  EXPECT_TRUE(eventually([&] { return admitted.load() == 4; }));
  EXPECT_EQ(counter(metrics_.queue_rejections_total, {{"queue", "key_actor"}}), 6);
}

TEST_F(KeyRegistryTest, PendingRequestsAreAnsweredWhenTheRegistryGoesAway) {
  source_->put(make_key("h1", {100, 1000}));
  source_->jobs().hold();
  std::atomic<int> answered{0};
  for (int i = 0; i < 5; ++i)
    registry().admit("h1", {"read"}, true, [&](admission) { ++answered; });
  registry_.reset();
  source_->jobs().release();
  EXPECT_TRUE(eventually([&] { return answered.load() == 5; }));
}

}  // namespace
}  // namespace datahub::actors
