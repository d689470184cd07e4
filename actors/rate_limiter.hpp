// Rate-limit counting for SPEC 3.4, actors layer: a key's minute and hour windows are checked and
// counted in one step with a sliding-window counter. The local implementation keeps the state
// inside the key's actor; a shared implementation (Redis, the same arithmetic in a script) can
// fill the same interface.
#pragma once

#include <cstdint>
#include <optional>

#include "actors/key_registry.hpp"
#include "core/api_key.hpp"

namespace datahub::actors {

/// One window's counts. Windows of length W are aligned to multiples of W on the limiter's clock
/// (nanoseconds since the Unix epoch in production), so every instance sees the same windows.
/// The limit is not part of the state: a changed limit applies to the same counts.
struct window_counts {
  int64_t window = 0;  ///< index of the aligned window `current` belongs to
  int64_t previous = 0;
  int64_t current = 0;
};

/// A key's whole limiter state; 48 bytes, small enough to park while the key's actor is stopped.
struct limiter_state {
  window_counts minute;
  window_counts hour;

  /// True when at `now_ns` nothing counted is left in either sliding window (two windows after
  /// the last admission at the latest), so dropping the state changes no decision.
  bool idle_at(int64_t now_ns) const;
};

/// The outcome of one check: whether the request was admitted and both windows as they are now.
struct limit_decision {
  bool admitted = false;
  window_state minute;
  window_state hour;
  /// Refusals only: whole seconds until both windows admit (>= 1).
  int64_t retry_after_seconds = 0;
  /// Refusals only: the window that refused (the one with the longer wait when both did).
  const char* limited_by = "minute";
};

/// Checks and counts one key's requests. Not thread-safe: one key actor owns one limiter.
class rate_limiter {
 public:
  virtual ~rate_limiter() = default;

  /// Admits the request only when both windows of `limits` allow it, and only then counts it in
  /// both. A refused request consumes nothing. `now_ns` is nanoseconds since the Unix epoch.
  virtual limit_decision check_and_consume(const core::rate_limit& limits, int64_t now_ns) = 0;

  /// What must be kept while the key's actor is stopped so a respawned actor continues where
  /// this one left off; nullopt when nothing needs keeping at `now_ns`.
  virtual std::optional<limiter_state> state_to_park(int64_t now_ns) const = 0;
};

/// The sliding-window counter in this process: for one instance (or REDIS_URL unset).
class local_rate_limiter final : public rate_limiter {
 public:
  explicit local_rate_limiter(limiter_state initial = {}) : state_(initial) {}

  limit_decision check_and_consume(const core::rate_limit& limits, int64_t now_ns) override;
  std::optional<limiter_state> state_to_park(int64_t now_ns) const override;

  const limiter_state& state() const { return state_; }

 private:
  limiter_state state_;
};

/// The sliding-window step itself, on any state: both windows checked, both counted only when
/// both admit.
///
/// A window of length W and limit L keeps the count of the current aligned window (cur) and of
/// the one before it (prev). At elapsed fraction f of the current window its estimate is
/// prev * (1 - f) + cur, and a request is admitted when estimate + 1 <= L. Evaluated in integer
/// milliseconds as prev * (W - e) + (cur + 1) * W <= L * W (e: elapsed ms), which stays below
/// 2^63 for limits up to 10^12.
///
/// Every aligned window admits at most L, and a key hammered from a fresh state gets exactly L
/// in its first window. The estimate assumes the previous window's requests were spread evenly
/// over it, and a rolling span of W is off by exactly how far they were not: a span ending at
/// fraction f of a window holds at most L plus the previous window's requests in the span beyond
/// their even share prev * (1 - f). Right after an edge that is small (L admitted in the last
/// 0.1 s of a window, then at most about L * 0.1 / 60 + 1 in the first 0.1 s of the next minute),
/// but a client that sends its whole limit at the very end of one window and keeps hammering
/// through the next gets close to 2L in the span of W that starts with that burst.
limit_decision sliding_window_check_and_consume(limiter_state& state,
                                                const core::rate_limit& limits, int64_t now_ns);

}  // namespace datahub::actors
