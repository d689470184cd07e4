// GCRA over a key's minute and hour windows, in integer nanoseconds.
#include "actors/rate_limiter.hpp"

#include <algorithm>

namespace datahub::actors {

namespace {

constexpr int64_t ns_per_second = 1'000'000'000;
constexpr int64_t minute_seconds = 60;
constexpr int64_t hour_seconds = 3600;

// GCC and Clang both provide a 128-bit integer; only rescaling a level after a limit change
// needs it, where level * interval can exceed 64 bits.
__extension__ using wide = __int128;

int64_t ceil_div(int64_t num, int64_t den) { return num <= 0 ? 0 : (num + den - 1) / den; }

/// One window evaluated at `now`, before anything is counted.
struct window_eval {
  int64_t limit = 0;
  int64_t seconds = 0;
  int64_t interval = 0;  ///< T, ns per request
  int64_t capacity = 0;  ///< L * T
  int64_t level = 0;     ///< max(0, tat - now)
  int64_t wait = 0;      ///< ns until a request would be admitted; 0 when it is now
  bool allows = false;
};

/// Brings the window to `limit`: when the limit changed, the requests already in the window are
/// kept as requests (a raised limit admits the difference at once), and the level is capped at
/// the new capacity, so lowering a limit never holds a key off longer than one interval beyond
/// a full window.
void adopt_limit(gcra_window& w, int64_t limit, int64_t period_ns, int64_t now) {
  if (limit <= 0 || w.limit == limit) {
    if (limit > 0)
      w.limit = limit;
    return;
  }
  if (w.limit > 0 && w.tat > now) {
    const int64_t old_interval = ceil_div(period_ns, w.limit);
    const int64_t new_interval = ceil_div(period_ns, limit);
    const wide capacity = static_cast<wide>(new_interval) * limit;
    wide level = static_cast<wide>(w.tat - now) * new_interval / old_interval;
    level = std::min(level, capacity);
    w.tat = now + static_cast<int64_t>(level);
  }
  w.limit = limit;
}

window_eval evaluate(const gcra_window& w, int64_t limit, int64_t seconds, int64_t now) {
  window_eval e;
  e.limit = limit;
  e.seconds = seconds;
  const int64_t period_ns = seconds * ns_per_second;
  if (limit <= 0) {
    // A zero limit refuses everything; the wait shown is one whole window.
    e.interval = period_ns;
    e.wait = period_ns;
    return e;
  }
  e.interval = ceil_div(period_ns, limit);
  e.capacity = e.interval * limit;
  e.level = std::max<int64_t>(0, w.tat - now);
  e.allows = e.level + e.interval <= e.capacity;
  e.wait = e.allows ? 0 : e.level + e.interval - e.capacity;
  return e;
}

window_state describe(const char* name, const window_eval& e) {
  window_state s;
  s.name = name;
  s.window_seconds = e.seconds;
  s.limit = std::max<int64_t>(0, e.limit);
  if (e.limit <= 0) {
    s.remaining = 0;
    s.reset_seconds = e.seconds;
    return s;
  }
  s.remaining = std::max<int64_t>(0, (e.capacity - e.level) / e.interval);
  if (s.remaining == 0) {
    s.reset_seconds =
        std::max<int64_t>(1, ceil_div(e.level + e.interval - e.capacity, ns_per_second));
  } else {
    s.reset_seconds = ceil_div(e.level, ns_per_second);
  }
  return s;
}

}  // namespace

limit_decision gcra_check_and_consume(gcra_state& state, const core::rate_limit& limits,
                                      int64_t now_ns) {
  adopt_limit(state.minute, limits.per_minute, minute_seconds * ns_per_second, now_ns);
  adopt_limit(state.hour, limits.per_hour, hour_seconds * ns_per_second, now_ns);
  window_eval minute = evaluate(state.minute, limits.per_minute, minute_seconds, now_ns);
  window_eval hour = evaluate(state.hour, limits.per_hour, hour_seconds, now_ns);

  limit_decision d;
  d.admitted = minute.allows && hour.allows;
  if (d.admitted) {
    state.minute.tat = std::max(state.minute.tat, now_ns) + minute.interval;
    state.hour.tat = std::max(state.hour.tat, now_ns) + hour.interval;
    minute.level += minute.interval;
    hour.level += hour.interval;
  }
  d.minute = describe("minute", minute);
  d.hour = describe("hour", hour);
  if (!d.admitted) {
    // A refusing window shows remaining 0 and reset = its wait in whole seconds, so Retry-After
    // equals the `t` of the window admission::tightest() picks.
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

std::optional<gcra_state> local_rate_limiter::state_to_park(int64_t now_ns) const {
  if (state_.replenished_at(now_ns))
    return std::nullopt;
  return state_;
}

}  // namespace datahub::actors
