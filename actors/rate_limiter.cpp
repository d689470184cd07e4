// The sliding-window counter over a key's minute and hour windows, in integer milliseconds. The
// estimate prev * (1 - f) + cur treats the previous window's requests as evenly spread, so a
// rolling minute can exceed the limit by how unevenly they were (see rate_limiter.hpp); each
// aligned window never admits more than its limit.
#include "actors/rate_limiter.hpp"

#include <algorithm>

namespace datahub::actors {

namespace {

constexpr int64_t ns_per_ms = 1'000'000;
constexpr int64_t ms_per_second = 1000;
constexpr int64_t minute_ms = 60 * ms_per_second;
constexpr int64_t hour_ms = 3600 * ms_per_second;

/// Limits beyond this are treated as this: with W = 3.6e6 ms, L * W and the sum of the two
/// terms of the admission test stay below 2^63. Configured limits are at most 10^9.
constexpr int64_t max_limit = 1'000'000'000'000;

int64_t floor_div(int64_t num, int64_t den) {
  const int64_t q = num / den;
  return (num % den != 0 && (num < 0) != (den < 0)) ? q - 1 : q;
}

int64_t ceil_div(int64_t num, int64_t den) {
  return num <= 0 ? 0 : (num + den - 1) / den;
}

/// Moves `w` to the aligned window holding `now_ms` and returns the elapsed ms in it. A clock
/// that stepped back leaves the state in its window, evaluated as at the window's start (the
/// estimate is then at its largest, so nothing extra is admitted).
int64_t roll(window_counts& w, int64_t window_ms, int64_t now_ms) {
  const int64_t index = floor_div(now_ms, window_ms);
  if (index == w.window + 1) {
    w.previous = w.current;
    w.current = 0;
  } else if (index > w.window + 1) {
    w.previous = 0;
    w.current = 0;
  }
  if (index < w.window)
    return 0;
  w.window = index;
  return now_ms - index * window_ms;
}

/// One window evaluated at `now`, on its rolled counts.
struct window_eval {
  const char* name = "minute";
  int64_t limit = 0;
  int64_t window_ms = 0;
  int64_t elapsed = 0;  ///< ms since the current window started
  bool allows = false;
};

/// prev * (W - e) + (cur + 1) * W <= L * W: the estimate with one more request fits the limit.
bool fits_one_more(const window_counts& w, int64_t limit, int64_t window_ms, int64_t elapsed) {
  return w.previous * (window_ms - elapsed) + (w.current + 1) * window_ms <= limit * window_ms;
}

window_eval evaluate(const char* name, window_counts& w, int64_t limit, int64_t window_ms,
                     int64_t now_ms) {
  window_eval e;
  e.name = name;
  e.limit = std::min(limit, max_limit);
  e.window_ms = window_ms;
  e.elapsed = roll(w, window_ms, now_ms);
  e.allows = e.limit > 0 && fits_one_more(w, e.limit, window_ms, e.elapsed);
  return e;
}

/// Ms from `e.elapsed` until one more request fits, given no further admissions. The estimate
/// only falls as time passes (and does not jump at an edge, where prev * 0 + cur becomes
/// cur * 1 + 0), so this is the first moment it fits. Precondition: it does not fit now.
int64_t wait_ms(const window_counts& w, const window_eval& e) {
  const int64_t limit = e.limit;
  const int64_t window = e.window_ms;
  // Within this window prev * (W - e') <= (L - 1 - cur) * W, i.e. e' >= W - K / prev. When that
  // lands on W or later, the next window's start is the first candidate.
  if (w.previous > 0 && w.current + 1 <= limit) {
    const int64_t slack = (limit - 1 - w.current) * window / w.previous;
    return std::max<int64_t>(0, window - std::min(slack, window) - e.elapsed);
  }
  // In the next window prev' = cur and cur' = 0: cur * (W - e'') <= (L - 1) * W. A window after
  // that has nothing left of cur, so e'' is at most W.
  const int64_t to_next = window - e.elapsed;
  if (w.current + 1 <= limit)
    return to_next;
  const int64_t slack = (limit - 1) * window / w.current;
  return to_next + window - std::min(slack, window);
}

/// The window as the headers show it, from its counts after this request (counted or not).
window_state describe(const window_counts& w, const window_eval& e) {
  window_state s;
  s.name = e.name;
  s.window_seconds = e.window_ms / ms_per_second;
  s.limit = std::max<int64_t>(0, e.limit);
  if (e.limit <= 0) {
    // A zero limit refuses everything; the wait shown is one whole window.
    s.remaining = 0;
    s.reset_seconds = s.window_seconds;
    return s;
  }
  // floor(L - estimate) = floor((L * W - prev * (W - e) - cur * W) / W).
  const int64_t headroom =
      e.limit * e.window_ms - w.previous * (e.window_ms - e.elapsed) - w.current * e.window_ms;
  s.remaining = headroom > 0 ? headroom / e.window_ms : 0;
  const int64_t until_ms = s.remaining > 0 ? e.window_ms - e.elapsed : wait_ms(w, e);
  s.reset_seconds = std::max<int64_t>(1, ceil_div(until_ms, ms_per_second));
  return s;
}

}  // namespace

bool limiter_state::idle_at(int64_t now_ns) const {
  const int64_t now_ms = floor_div(now_ns, ns_per_ms);
  auto idle = [now_ms](const window_counts& w, int64_t window_ms) {
    const int64_t index = floor_div(now_ms, window_ms);
    if (index > w.window + 1)
      return true;
    if (index == w.window + 1)
      return w.current == 0;
    return w.previous == 0 && w.current == 0;
  };
  return idle(minute, minute_ms) && idle(hour, hour_ms);
}

limit_decision sliding_window_check_and_consume(limiter_state& state,
                                                const core::rate_limit& limits, int64_t now_ns) {
  const int64_t now_ms = floor_div(now_ns, ns_per_ms);
  const window_eval minute = evaluate("minute", state.minute, limits.per_minute, minute_ms, now_ms);
  const window_eval hour = evaluate("hour", state.hour, limits.per_hour, hour_ms, now_ms);

  limit_decision d;
  d.admitted = minute.allows && hour.allows;
  if (d.admitted) {
    ++state.minute.current;
    ++state.hour.current;
  }
  d.minute = describe(state.minute, minute);
  d.hour = describe(state.hour, hour);
  if (!d.admitted) {
    // A refusing window has remaining 0 and reset = its wait, the other at least 1 remaining;
    // Retry-After is the longer wait of the refusing windows, which is the window
    // admission::tightest() picks, so `Retry-After` and the `t` of `RateLimit` agree.
    const bool hour_longer =
        !minute.allows ? (!hour.allows && d.hour.reset_seconds > d.minute.reset_seconds) : true;
    d.limited_by = hour_longer ? "hour" : "minute";
    d.retry_after_seconds = hour_longer ? d.hour.reset_seconds : d.minute.reset_seconds;
  }
  return d;
}

limit_decision local_rate_limiter::check_and_consume(const core::rate_limit& limits,
                                                     int64_t now_ns) {
  return sliding_window_check_and_consume(state_, limits, now_ns);
}

std::optional<limiter_state> local_rate_limiter::state_to_park(int64_t now_ns) const {
  if (state_.idle_at(now_ns))
    return std::nullopt;
  return state_;
}

}  // namespace datahub::actors
