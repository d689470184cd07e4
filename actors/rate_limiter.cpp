// GCRA over a key's minute and hour windows, in integer nanoseconds on a monotonic clock. Each
// window is one theoretical arrival time: a burst of L at once, then one request per W / L, with
// no window edges (the bound over any span is in rate_limiter.hpp).
#include "actors/rate_limiter.hpp"

#include <algorithm>

namespace datahub::actors {

namespace {

constexpr int64_t ns_per_second = 1'000'000'000;
constexpr int64_t minute_seconds = 60;
constexpr int64_t hour_seconds = 3600;

/// Limits beyond this are treated as this, so L * T (at most W + L) stays far below 2^63.
/// Configured limits are at most 10^9.
constexpr int64_t max_limit = 1'000'000'000'000;

// GCC and Clang both provide a 128-bit integer; only re-expressing a level in a changed limit
// needs it, where level * interval can exceed 64 bits.
__extension__ using wide = __int128;

int64_t ceil_div(int64_t num, int64_t den) {
  return num <= 0 ? 0 : (num + den - 1) / den;
}

/// T = ceil(W / L): rounding up keeps the long-run rate at or under L per W.
int64_t interval_of(int64_t limit, int64_t window_ns) {
  return ceil_div(window_ns, limit);
}

/// Brings the window to `limit` (> 0). The usage already counted is kept as a number of
/// requests, so a raised limit admits the difference at once. A lowered limit the usage already
/// exceeds leaves the window full, not over-full: the key waits one new interval, never longer
/// than a window. Only the representation changes, so this runs on a refusal too; otherwise the
/// old level would drain at the old limit's pace and Retry-After would be wrong.
void adopt_limit(gcra_window& w, int64_t limit, int64_t window_ns, int64_t now_ns) {
  if (w.limit == limit)
    return;
  if (w.limit > 0 && w.tat > now_ns) {
    const int64_t old_interval = interval_of(w.limit, window_ns);
    const int64_t new_interval = interval_of(limit, window_ns);
    const wide capacity = static_cast<wide>(new_interval) * limit;
    const wide level = static_cast<wide>(w.tat - now_ns) * new_interval / old_interval;
    w.tat = now_ns + static_cast<int64_t>(std::min(level, capacity));
  }
  w.limit = limit;
}

/// One window evaluated at `now`, before anything is counted.
struct window_eval {
  const char* name = "minute";
  int64_t seconds = 0;
  int64_t limit = 0;     ///< 0: the window refuses everything
  int64_t interval = 0;  ///< T, ns per request
  int64_t capacity = 0;  ///< L * T
  int64_t level = 0;     ///< max(0, TAT - now)
  bool allows = false;
};

window_eval evaluate(const char* name, gcra_window& w, int64_t configured, int64_t seconds,
                     int64_t now_ns) {
  window_eval e;
  e.name = name;
  e.seconds = seconds;
  if (configured <= 0)
    return e;
  const int64_t window_ns = seconds * ns_per_second;
  e.limit = std::min(configured, max_limit);
  adopt_limit(w, e.limit, window_ns, now_ns);
  e.interval = interval_of(e.limit, window_ns);
  e.capacity = e.interval * e.limit;
  e.level = std::max<int64_t>(0, w.tat - now_ns);
  e.allows = e.level + e.interval <= e.capacity;
  return e;
}

/// The window as the headers show it, at level `e.level` (this request counted or not).
window_state describe(const window_eval& e) {
  window_state s;
  s.name = e.name;
  s.window_seconds = e.seconds;
  s.limit = e.limit;
  if (e.limit <= 0) {
    // A zero limit refuses everything; the wait shown is one whole window.
    s.remaining = 0;
    s.reset_seconds = e.seconds;
    return s;
  }
  // k more fit while level + k * T <= capacity.
  s.remaining = e.capacity > e.level ? (e.capacity - e.level) / e.interval : 0;
  if (s.remaining > 0) {
    // Fully replenished once the TAT is reached; 0 when it already is.
    s.reset_seconds = ceil_div(e.level, ns_per_second);
  } else {
    // The next request fits once the level has drained to capacity - T.
    s.reset_seconds =
        std::max<int64_t>(1, ceil_div(e.level + e.interval - e.capacity, ns_per_second));
  }
  return s;
}

}  // namespace

limit_decision gcra_check_and_consume(limiter_state& state, const core::rate_limit& limits,
                                      int64_t now_ns) {
  window_eval minute = evaluate("minute", state.minute, limits.per_minute, minute_seconds, now_ns);
  window_eval hour = evaluate("hour", state.hour, limits.per_hour, hour_seconds, now_ns);

  limit_decision d;
  d.admitted = minute.allows && hour.allows;
  if (d.admitted) {
    state.minute.tat = std::max(state.minute.tat, now_ns) + minute.interval;
    state.hour.tat = std::max(state.hour.tat, now_ns) + hour.interval;
    minute.level += minute.interval;
    hour.level += hour.interval;
  }
  d.minute = describe(minute);
  d.hour = describe(hour);
  if (!d.admitted) {
    // A refusing window shows remaining 0 and reset = its wait, the other at least 1 remaining.
    // Retry-After is the longer wait of the refusing windows, which is the window
    // admission::tightest() picks, so `Retry-After` and the `t` of `RateLimit` agree. Levels only
    // fall while nothing is admitted, so both windows admit once that wait is over.
    const bool hour_longer =
        !minute.allows ? (!hour.allows && d.hour.reset_seconds > d.minute.reset_seconds) : true;
    d.limited_by = hour_longer ? "hour" : "minute";
    d.retry_after_seconds = hour_longer ? d.hour.reset_seconds : d.minute.reset_seconds;
  }
  return d;
}

limit_decision local_rate_limiter::check_and_consume(const core::rate_limit& limits,
                                                     int64_t now_ns) {
  return gcra_check_and_consume(state_, limits, now_ns);
}

std::optional<limiter_state> local_rate_limiter::state_to_park(int64_t now_ns) const {
  if (state_.replenished_at(now_ns))
    return std::nullopt;
  return state_;
}

}  // namespace datahub::actors
