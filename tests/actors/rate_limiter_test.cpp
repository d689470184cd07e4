// Sliding-window limiter: both windows checked and counted together, on an injected clock.
#include "actors/rate_limiter.hpp"

#include <algorithm>
#include <deque>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "actors/key_registry.hpp"

namespace datahub::actors {
namespace {

constexpr int64_t ms = 1'000'000;
constexpr int64_t second = 1'000'000'000;
/// A whole hour (and so a whole minute) since the Unix epoch: 2023-11-14T21:00:00Z.
constexpr int64_t hour_start = 1'699'999'200 * second;
/// An arbitrary offset into a minute, not on a millisecond or second boundary.
constexpr int64_t odd_offset = 23 * second + 456'789'123;

class RateLimiterTest : public ::testing::Test {
 protected:
  limit_decision check(const core::rate_limit& limits) {
    return limiter_.check_and_consume(limits, now_);
  }

  /// Whether a request at `at` would be admitted, leaving the limiter as it is.
  bool would_admit(const core::rate_limit& limits, int64_t at) const {
    auto copy = limiter_.state();
    return sliding_window_check_and_consume(copy, limits, at).admitted;
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
  int64_t now_ = hour_start + odd_offset;
};

TEST_F(RateLimiterTest, AdmitsExactlyTheMinuteLimitThenRefusesUntilRetryAfter) {
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
  EXPECT_GE(refused.retry_after_seconds, 1);
  EXPECT_LE(refused.retry_after_seconds, 60);
  EXPECT_EQ(refused.retry_after_seconds, as_admission(refused).tightest().reset_seconds);
  // 36.544 s to the minute's end, then prev = 5 must decay to 4: 12 s into the next minute.
  EXPECT_EQ(refused.retry_after_seconds, 49);

  const int64_t retry = refused.retry_after_seconds * second;
  advance(retry - second);
  auto early = check(limits);
  EXPECT_FALSE(early.admitted);
  EXPECT_EQ(early.retry_after_seconds, 1);
  advance(second);
  EXPECT_TRUE(check(limits).admitted);
  EXPECT_FALSE(check(limits).admitted);
}

TEST_F(RateLimiterTest, ReportsRemainingAndResetPerWindow) {
  const core::rate_limit limits{5, 1000};
  auto first = check(limits);
  EXPECT_EQ(first.minute.limit, 5);
  EXPECT_EQ(first.minute.window_seconds, 60);
  EXPECT_EQ(first.minute.remaining, 4);
  EXPECT_EQ(first.minute.reset_seconds, 37);  // the minute ends 36.544 s later
  EXPECT_EQ(first.hour.window_seconds, 3600);
  EXPECT_EQ(first.hour.remaining, 999);
  EXPECT_EQ(first.hour.reset_seconds, 3577);  // the hour ends 3576.544 s later

  // Half a minute into the next window, half of the previous window's request still counts.
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(check(limits).admitted);
  advance(60 * second - odd_offset + 30 * second);
  auto later = check(limits);
  EXPECT_TRUE(later.admitted);
  EXPECT_EQ(later.minute.remaining, 2);  // floor(5 - (4 * 0.5 + 1))
  EXPECT_EQ(later.minute.reset_seconds, 30);

  // Two whole windows later nothing is left.
  advance(120 * second);
  auto fresh = check(limits);
  EXPECT_EQ(fresh.minute.remaining, 4);
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
  EXPECT_EQ(refused.retry_after_seconds, as_admission(refused).tightest().reset_seconds);
  EXPECT_GE(refused.retry_after_seconds, 60);
  // 3576.544 s to the hour's end, then prev = 3 must decay to 2: 1200 s into the next hour.
  EXPECT_EQ(refused.retry_after_seconds, 4777);

  advance((refused.retry_after_seconds - 1) * second);
  auto early = check(limits);
  EXPECT_FALSE(early.admitted);
  EXPECT_STREQ(early.limited_by, "hour");
  advance(second);
  EXPECT_TRUE(check(limits).admitted);
}

TEST_F(RateLimiterTest, RefusedRequestsConsumeNothing) {
  const core::rate_limit limits{5, 6};
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(check(limits).admitted);
  auto first_refusal = check(limits);
  ASSERT_FALSE(first_refusal.admitted);
  const int64_t admit_at = now_ + first_refusal.retry_after_seconds * second;

  // Hammer up to one second before that moment (the wait is rounded up to whole seconds, so
  // later attempts may be admitted): every refusal leaves both windows as they were.
  int64_t last_retry = first_refusal.retry_after_seconds;
  while (now_ + 10 * ms <= admit_at - second) {
    advance(10 * ms);
    auto d = check(limits);
    ASSERT_FALSE(d.admitted);
    ASSERT_LE(d.retry_after_seconds, last_retry);
    last_retry = d.retry_after_seconds;
  }
  now_ = admit_at;
  EXPECT_TRUE(check(limits).admitted);

  // The hour window counted 6 admissions and none of the thousands of refusals.
  auto d = check(limits);
  EXPECT_FALSE(d.admitted);
  EXPECT_EQ(d.hour.remaining, 0);
  EXPECT_EQ(d.hour.limit, 6);
}

TEST_F(RateLimiterTest, RetryAfterIsExactAndEqualsTheTightestWindowsReset) {
  const core::rate_limit limits{10, 25};
  int refusals = 0;
  int refused_by_hour = 0;
  for (int step = 0; step < 4000; ++step) {
    auto d = check(limits);
    if (!d.admitted) {
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
    advance(700 * ms);
  }
  EXPECT_GT(refusals, 3000);
  EXPECT_GT(refused_by_hour, 1000);
}

TEST_F(RateLimiterTest, HammeringAFreshAlignedMinuteAdmitsExactlyTheLimit) {
  for (int64_t limit : {1, 7, 100, 5999}) {
    local_rate_limiter limiter;
    int admitted = 0;
    for (int64_t t = 0; t < 60 * second; t += 10 * ms)
      admitted += limiter.check_and_consume({limit, 100000}, hour_start + t).admitted ? 1 : 0;
    EXPECT_EQ(admitted, limit);
  }
}

TEST_F(RateLimiterTest, AdmitsOnlyAFewMoreJustAfterAWindowEdge) {
  // A fixed window would admit L just before its edge and L more just after it.
  for (int64_t limit : {100, 6000, 1000000}) {
    local_rate_limiter limiter;
    const core::rate_limit limits{limit, 100 * limit};
    const int64_t before_edge = hour_start + 59 * second + 900 * ms;
    for (int64_t i = 0; i < limit; ++i)
      ASSERT_TRUE(limiter.check_and_consume(limits, before_edge).admitted);
    const int64_t after_edge = before_edge + 200 * ms;
    int64_t more = 0;
    for (int64_t i = 0; i < limit; ++i)
      more += limiter.check_and_consume(limits, after_edge).admitted ? 1 : 0;
    // The estimate 0.1 s into the minute is L * 59.9 / 60 + cur.
    EXPECT_LE(more, (limit + 599) / 600 + 1) << "limit " << limit;
    EXPECT_EQ(more, limit / 600) << "limit " << limit;
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

TEST_F(RateLimiterTest, SteadyHammeringStaysWithinTheLimitInEveryRollingMinute) {
  const core::rate_limit limits{100, 100000};
  const auto times = hammer(limiter_, limits, hour_start, hour_start + 600 * second);
  // The first minute's burst of L, then L - 1 per minute spread evenly by the estimate: the L-th
  // request of a minute would fit only at its very end, where the next minute already begins.
  EXPECT_EQ(times.size(), 100u + 9 * 99u);
  EXPECT_LE(most_in_any_span(times, 60 * second), 101u);
}

TEST_F(RateLimiterTest, BunchedPreviousWindowIsTheWorstCaseForARollingMinute) {
  // The whole limit in the last 0.1 s of a minute, then hammering through the next one. The
  // estimate spreads the burst evenly over the previous minute, so the rolling minute that starts
  // with the burst holds L + 99: the known error of a sliding-window counter, still under 2L.
  const core::rate_limit limits{100, 100000};
  const int64_t minute_end = hour_start + 60 * second;
  std::vector<int64_t> times;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(limiter_.check_and_consume(limits, minute_end - 100 * ms).admitted);
    times.push_back(minute_end - 100 * ms);
  }
  const auto next = hammer(limiter_, limits, minute_end, minute_end + 60 * second);
  EXPECT_LE(next.size(), 100u);  // each aligned minute holds at most L
  // (cur + 1) * 600 ms <= elapsed: one admission every 0.6 s, the first 0.6 s after the edge.
  EXPECT_EQ(next.size(), 99u);
  EXPECT_EQ(next.front(), minute_end + 600 * ms);
  times.insert(times.end(), next.begin(), next.end());
  EXPECT_EQ(most_in_any_span(times, 60 * second), 199u);
}

TEST_F(RateLimiterTest, CountsSurviveALimitChange) {
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(check({100, 100000}).admitted);
  auto lowered = check({10, 100000});
  EXPECT_FALSE(lowered.admitted);
  EXPECT_EQ(lowered.minute.limit, 10);
  EXPECT_EQ(lowered.minute.remaining, 0);
  // 36.544 s to the minute's end, then prev = 50 must decay to 9: 49.2 s into the next minute.
  EXPECT_EQ(lowered.retry_after_seconds, 86);
  advance(85 * second);
  EXPECT_FALSE(check({10, 100000}).admitted);
  advance(second);
  EXPECT_TRUE(check({10, 100000}).admitted);
}

TEST_F(RateLimiterTest, RaisedLimitAdmitsMoreAtOnceAndKeepsUsage) {
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(check({3, 1000}).admitted);
  EXPECT_FALSE(check({3, 1000}).admitted);
  auto raised = check({5, 1000});
  EXPECT_TRUE(raised.admitted);
  EXPECT_EQ(raised.minute.remaining, 1);
  EXPECT_TRUE(check({5, 1000}).admitted);
  EXPECT_FALSE(check({5, 1000}).admitted);
}

TEST_F(RateLimiterTest, ZeroLimitRefusesEverything) {
  auto d = check({0, 100});
  EXPECT_FALSE(d.admitted);
  EXPECT_STREQ(d.limited_by, "minute");
  EXPECT_EQ(d.retry_after_seconds, 60);
  EXPECT_EQ(d.hour.remaining, 100);
}

TEST_F(RateLimiterTest, ParksOnlyStateThatStillCountsRequests) {
  EXPECT_FALSE(limiter_.state_to_park(now_).has_value());
  ASSERT_TRUE(check({10, 100}).admitted);
  auto parked = limiter_.state_to_park(now_);
  ASSERT_TRUE(parked.has_value());

  // A limiter restored from the parked state goes on where this one stopped.
  local_rate_limiter restored(*parked);
  for (int i = 0; i < 9; ++i)
    ASSERT_TRUE(restored.check_and_consume({10, 100}, now_).admitted);
  EXPECT_FALSE(restored.check_and_consume({10, 100}, now_).admitted);

  // The request counts in the hour's sliding estimate until the end of the next hour.
  EXPECT_TRUE(limiter_.state_to_park(hour_start + 7200 * second - ms).has_value());
  EXPECT_FALSE(limiter_.state_to_park(hour_start + 7200 * second).has_value());
}

}  // namespace
}  // namespace datahub::actors
