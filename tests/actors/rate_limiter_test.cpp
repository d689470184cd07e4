// GCRA limiter: both windows checked and counted together, on an injected monotonic clock.
#include "actors/rate_limiter.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
#include <random>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "actors/key_registry.hpp"

namespace datahub::actors {
namespace {

constexpr int64_t ms = 1'000'000;
constexpr int64_t second = 1'000'000'000;
/// An arbitrary point on the monotonic clock, not on a millisecond or second boundary: GCRA
/// needs no alignment, so nothing may depend on where the clock stands.
constexpr int64_t start = 86'423 * second + 456'789'123;

bool same_state(const limiter_state& a, const limiter_state& b) {
  return a.minute.tat == b.minute.tat && a.minute.limit == b.minute.limit &&
         a.hour.tat == b.hour.tat && a.hour.limit == b.hour.limit;
}

class RateLimiterTest : public ::testing::Test {
 protected:
  limit_decision check(const core::rate_limit& limits) {
    return limiter_.check_and_consume(limits, now_);
  }

  /// Whether a request at `at` would be admitted, leaving the limiter as it is.
  bool would_admit(const core::rate_limit& limits, int64_t at) const {
    auto copy = limiter_.state();
    return gcra_check_and_consume(copy, limits, at).admitted;
  }

  /// The admission the key actor would build, to ask it for its tightest window.
  static admission as_admission(const limit_decision& d) {
    admission a;
    a.result = d.admitted ? admission::verdict::admitted : admission::verdict::rate_limited;
    a.minute = d.minute;
    a.hour = d.hour;
    a.retry_after_seconds = d.retry_after_seconds;
    a.limited_by = d.limited_by;
    return a;
  }

  void advance(int64_t ns) { now_ += ns; }

  local_rate_limiter limiter_;
  int64_t now_ = start;
};

TEST_F(RateLimiterTest, AdmitsExactlyTheMinuteLimitThenRefusesForOneInterval) {
  const core::rate_limit limits{5, 1000};
  for (int i = 0; i < 5; ++i) {
    auto d = check(limits);
    ASSERT_TRUE(d.admitted) << "request " << i;
    EXPECT_EQ(d.minute.remaining, 4 - i);
    EXPECT_EQ(d.hour.remaining, 999 - i);
  }
  auto refused = check(limits);
  EXPECT_FALSE(refused.admitted);
  EXPECT_STREQ(refused.limited_by, "minute");
  EXPECT_EQ(refused.minute.remaining, 0);
  // The emission interval W / L = 12 s, and the `t` of `RateLimit` says the same.
  EXPECT_EQ(refused.retry_after_seconds, 12);
  EXPECT_EQ(as_admission(refused).tightest().reset_seconds, 12);
  EXPECT_STREQ(as_admission(refused).tightest().name, "minute");

  advance(11 * second);
  auto early = check(limits);
  EXPECT_FALSE(early.admitted);
  EXPECT_EQ(early.retry_after_seconds, 1);
  advance(second);
  auto on_time = check(limits);
  EXPECT_TRUE(on_time.admitted);
  EXPECT_EQ(on_time.minute.remaining, 0);
  EXPECT_EQ(on_time.minute.reset_seconds, 12);
  EXPECT_FALSE(check(limits).admitted);
}

TEST_F(RateLimiterTest, ReportsRemainingAndResetPerWindow) {
  const core::rate_limit limits{5, 1000};
  auto first = check(limits);
  EXPECT_EQ(first.minute.limit, 5);
  EXPECT_EQ(first.minute.window_seconds, 60);
  EXPECT_EQ(first.minute.remaining, 4);
  EXPECT_EQ(first.minute.reset_seconds, 12);  // full again one interval later
  EXPECT_EQ(first.hour.window_seconds, 3600);
  EXPECT_EQ(first.hour.remaining, 999);
  EXPECT_EQ(first.hour.reset_seconds, 4);  // ceil(3.6 s)

  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(check(limits).admitted);
  // 48 s of level; 30 s later 18 s are left, and this request adds 12.
  advance(30 * second);
  auto later = check(limits);
  EXPECT_TRUE(later.admitted);
  EXPECT_EQ(later.minute.remaining, 2);
  EXPECT_EQ(later.minute.reset_seconds, 30);

  // One whole window later the key is fully replenished.
  advance(60 * second);
  auto fresh = check(limits);
  EXPECT_EQ(fresh.minute.remaining, 4);
  EXPECT_EQ(fresh.minute.reset_seconds, 12);
}

TEST_F(RateLimiterTest, RefusesOnTheHourWindowWhenItIsTighter) {
  const core::rate_limit limits{1000, 3};
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(check(limits).admitted);
  auto refused = check(limits);
  EXPECT_FALSE(refused.admitted);
  EXPECT_STREQ(refused.limited_by, "hour");
  EXPECT_EQ(refused.minute.remaining, 997);  // the refusal counted nowhere
  EXPECT_EQ(refused.hour.remaining, 0);
  EXPECT_EQ(refused.retry_after_seconds, 1200);  // 3600 s / 3
  EXPECT_EQ(refused.retry_after_seconds, as_admission(refused).tightest().reset_seconds);
  EXPECT_STREQ(as_admission(refused).tightest().name, "hour");

  advance(1199 * second);
  auto early = check(limits);
  EXPECT_FALSE(early.admitted);
  EXPECT_STREQ(early.limited_by, "hour");
  EXPECT_EQ(early.retry_after_seconds, 1);
  advance(second);
  EXPECT_TRUE(check(limits).admitted);
  EXPECT_FALSE(check(limits).admitted);
}

TEST_F(RateLimiterTest, RefusedRequestsConsumeNothing) {
  const core::rate_limit limits{5, 6};
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(check(limits).admitted);
  const limiter_state before = limiter_.state();
  auto first_refusal = check(limits);
  ASSERT_FALSE(first_refusal.admitted);
  ASSERT_EQ(first_refusal.retry_after_seconds, 12);
  // The exact moment the minute window admits again: one interval after the burst.
  const int64_t admit_at = now_ + 12 * second;

  // Hammer every 10 ms until just before that moment: every refusal leaves the state as it was
  // and names the same moment, rounded up to whole seconds.
  int refusals = 0;
  while (now_ + 10 * ms < admit_at) {
    advance(10 * ms);
    auto d = check(limits);
    ASSERT_FALSE(d.admitted);
    ASSERT_TRUE(same_state(limiter_.state(), before));
    const int64_t named = now_ + d.retry_after_seconds * second;
    ASSERT_GE(named, admit_at);
    ASSERT_LT(named - admit_at, second);
    ++refusals;
  }
  EXPECT_GT(refusals, 1000);
  now_ = admit_at;
  EXPECT_TRUE(check(limits).admitted);

  // The hour window counted 6 admissions and none of the refusals.
  auto d = check(limits);
  EXPECT_FALSE(d.admitted);
  EXPECT_STREQ(d.limited_by, "hour");
  EXPECT_EQ(d.hour.remaining, 0);
  EXPECT_EQ(d.hour.limit, 6);
  EXPECT_EQ(d.retry_after_seconds, 600 - 12);  // 3600 s / 6, less the 12 s already drained
}

TEST_F(RateLimiterTest, EveryRefusalNamesTheTightestWindowAndItsExactWait) {
  const core::rate_limit limits{10, 25};
  std::mt19937_64 random(20240601);
  std::uniform_int_distribution<int64_t> gap(0, 1500 * ms);
  int refusals = 0;
  int refused_by_hour = 0;
  int admissions = 0;
  for (int step = 0; step < 6000; ++step) {
    auto d = check(limits);
    if (d.admitted) {
      ++admissions;
    } else {
      ++refusals;
      const auto a = as_admission(d);
      ASSERT_EQ(d.retry_after_seconds, a.tightest().reset_seconds) << "step " << step;
      ASSERT_STREQ(d.limited_by, a.tightest().name) << "step " << step;
      ASSERT_EQ(a.tightest().remaining, 0) << "step " << step;
      ASSERT_GE(d.retry_after_seconds, 1);
      refused_by_hour += std::string_view{d.limited_by} == "hour" ? 1 : 0;
      // Admitted exactly retry_after seconds later, and not one second earlier.
      const int64_t retry = d.retry_after_seconds * second;
      ASSERT_TRUE(would_admit(limits, now_ + retry)) << "step " << step;
      if (d.retry_after_seconds > 1) {
        ASSERT_FALSE(would_admit(limits, now_ + retry - second)) << "step " << step;
      }
    }
    advance(gap(random));
  }
  EXPECT_GT(refusals, 4000);
  EXPECT_GT(refused_by_hour, 1000);
  // About 75 minutes: a burst of 25, then one per 144 s.
  EXPECT_LE(admissions, 25 + (now_ - start) / (144 * second) + 1);
}

TEST_F(RateLimiterTest, IdleKeyGetsABurstOfExactlyTheLimit) {
  for (int64_t limit : {1, 7, 100, 5999}) {
    local_rate_limiter limiter;
    const core::rate_limit limits{limit, 100 * limit};
    int64_t admitted = 0;
    for (int64_t i = 0; i < limit + 10; ++i)
      admitted += limiter.check_and_consume(limits, start).admitted ? 1 : 0;
    EXPECT_EQ(admitted, limit) << "limit " << limit;
  }
}

TEST_F(RateLimiterTest, FullBurstIsBackAfterOneIdleWindow) {
  const core::rate_limit limits{5, 1000};
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(check(limits).admitted);
  ASSERT_FALSE(check(limits).admitted);

  // One nanosecond short of a window, one interval is still in use.
  EXPECT_TRUE(would_admit(limits, now_ + 60 * second - 1));
  auto copy = limiter_.state();
  EXPECT_EQ(gcra_check_and_consume(copy, limits, now_ + 60 * second - 1).minute.remaining, 3);

  advance(60 * second);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(check(limits).admitted) << "request " << i;
  EXPECT_FALSE(check(limits).admitted);
}

TEST_F(RateLimiterTest, NoSecondBurstRightAfterTheFirst) {
  // A fixed window would admit L just before its edge and L more just after it. GCRA has no
  // edges: 0.2 s after a burst of L, only what drained in those 0.2 s is admitted.
  for (int64_t limit : {100, 6000, 1000000}) {
    local_rate_limiter limiter;
    const core::rate_limit limits{limit, 100 * limit};
    for (int64_t i = 0; i < limit; ++i)
      ASSERT_TRUE(limiter.check_and_consume(limits, start).admitted);
    const int64_t interval = (60 * second + limit - 1) / limit;
    int64_t more = 0;
    for (int64_t i = 0; i < limit; ++i)
      more += limiter.check_and_consume(limits, start + 200 * ms).admitted ? 1 : 0;
    EXPECT_EQ(more, 200 * ms / interval) << "limit " << limit;
  }
}

/// Admissions of a client trying every 10 ms in [from, to), on `limiter` with `limits`.
std::vector<int64_t> hammer(local_rate_limiter& limiter, const core::rate_limit& limits,
                            int64_t from, int64_t to) {
  std::vector<int64_t> times;
  for (int64_t t = from; t < to; t += 10 * ms) {
    if (limiter.check_and_consume(limits, t).admitted)
      times.push_back(t);
  }
  return times;
}

/// The most admissions in any span of `span` ns (a half-open interval ending at an admission).
size_t most_in_any_span(const std::vector<int64_t>& times, int64_t span) {
  size_t most = 0;
  std::deque<int64_t> in_span;
  for (int64_t t : times) {
    in_span.push_back(t);
    while (in_span.front() <= t - span)
      in_span.pop_front();
    most = std::max(most, in_span.size());
  }
  return most;
}

TEST_F(RateLimiterTest, HammeringFromIdleGetsTheBurstThenOnePerInterval) {
  const core::rate_limit limits{100, 100000};
  // A client with 100 requests ready at once, then one every 10 ms for ten minutes.
  std::vector<int64_t> times;
  for (int i = 0; i < 150; ++i) {
    if (limiter_.check_and_consume(limits, start).admitted)
      times.push_back(start);
  }
  ASSERT_EQ(times.size(), 100u);
  const auto rest = hammer(limiter_, limits, start + 10 * ms, start + 600 * second);
  times.insert(times.end(), rest.begin(), rest.end());
  // The burst of 100, then one every 0.6 s: at 0.6 s, 1.2 s, ..., 599.4 s.
  ASSERT_EQ(times.size(), 100u + 999u);
  EXPECT_EQ(times[100], start + 600 * ms);
  EXPECT_EQ(times.back(), start + 599'400 * ms);
  // The documented bound: L + S / T in any span S, so 2L - 1 in the first 60 s ...
  EXPECT_EQ(most_in_any_span(times, 60 * second), 199u);
  // ... and L per minute once the burst is spent.
  const auto later = std::count_if(times.begin(), times.end(), [](int64_t t) {
    return t >= start + 60 * second && t < start + 120 * second;
  });
  EXPECT_EQ(later, 100);
}

TEST_F(RateLimiterTest, UsageSurvivesALoweredLimit) {
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(check({100, 100000}).admitted);
  // 50 requests are over the new limit of 10: the window is full, not forgotten.
  auto lowered = check({10, 100000});
  EXPECT_FALSE(lowered.admitted);
  EXPECT_EQ(lowered.minute.limit, 10);
  EXPECT_EQ(lowered.minute.remaining, 0);
  EXPECT_EQ(lowered.retry_after_seconds, 6);  // one new interval
  EXPECT_EQ(lowered.hour.remaining, 100000 - 50);
  advance(5 * second);
  EXPECT_FALSE(check({10, 100000}).admitted);
  advance(second);
  EXPECT_TRUE(check({10, 100000}).admitted);
  EXPECT_FALSE(check({10, 100000}).admitted);
}

TEST_F(RateLimiterTest, UsageIsKeptInRequestsAcrossALimitChange) {
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(check({10, 1000}).admitted);
  // Half of 10 used; at 20 per minute the same 5 requests leave 15.
  auto changed = check({20, 1000});
  EXPECT_TRUE(changed.admitted);
  EXPECT_EQ(changed.minute.remaining, 14);
  EXPECT_EQ(changed.hour.remaining, 1000 - 6);
  for (int i = 0; i < 14; ++i)
    ASSERT_TRUE(check({20, 1000}).admitted) << "request " << i;
  EXPECT_FALSE(check({20, 1000}).admitted);
}

TEST_F(RateLimiterTest, RaisedLimitAdmitsMoreAtOnceAndKeepsUsage) {
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(check({3, 1000}).admitted);
  EXPECT_FALSE(check({3, 1000}).admitted);
  auto raised = check({5, 1000});
  EXPECT_TRUE(raised.admitted);
  EXPECT_EQ(raised.minute.remaining, 1);
  EXPECT_TRUE(check({5, 1000}).admitted);
  auto refused = check({5, 1000});
  EXPECT_FALSE(refused.admitted);
  EXPECT_EQ(refused.retry_after_seconds, 12);
}

TEST_F(RateLimiterTest, ZeroLimitRefusesEverything) {
  auto d = check({0, 100});
  EXPECT_FALSE(d.admitted);
  EXPECT_STREQ(d.limited_by, "minute");
  EXPECT_EQ(d.retry_after_seconds, 60);
  EXPECT_EQ(d.hour.remaining, 100);
}

TEST_F(RateLimiterTest, HugeLimitsNeitherOverflowNorRefuse) {
  constexpr int64_t huge = std::numeric_limits<int64_t>::max();
  auto d = check({huge, huge});
  EXPECT_TRUE(d.admitted);
  EXPECT_GT(d.minute.remaining, 1'000'000'000);
  EXPECT_GT(d.hour.remaining, 1'000'000'000);
  EXPECT_GE(d.minute.reset_seconds, 0);
}

TEST_F(RateLimiterTest, ParksOnlyStateThatIsNotFullyReplenished) {
  EXPECT_FALSE(limiter_.state_to_park(now_).has_value());
  ASSERT_TRUE(check({10, 100}).admitted);
  auto parked = limiter_.state_to_park(now_);
  ASSERT_TRUE(parked.has_value());

  // A limiter restored from the parked state goes on where this one stopped.
  local_rate_limiter restored(*parked);
  for (int i = 0; i < 9; ++i)
    ASSERT_TRUE(restored.check_and_consume({10, 100}, now_).admitted);
  EXPECT_FALSE(restored.check_and_consume({10, 100}, now_).admitted);

  // The request is drained from the hour window one hour interval (36 s) later.
  EXPECT_TRUE(limiter_.state_to_park(now_ + 36 * second - 1).has_value());
  EXPECT_FALSE(limiter_.state_to_park(now_ + 36 * second).has_value());
}

}  // namespace
}  // namespace datahub::actors
