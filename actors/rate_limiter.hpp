// Rate-limit counting for SPEC 3.4, actors layer: a key's minute and hour windows are checked and
// counted in one step with GCRA (the generic cell rate algorithm). The local implementation keeps
// the state inside the key's actor; a shared implementation (Redis, the same arithmetic in a
// script) can fill the same interface.
#pragma once

#include <cstdint>
#include <optional>

#include "actors/key_registry.hpp"
#include "core/api_key.hpp"

namespace datahub::actors {

/// One window's GCRA state: its theoretical arrival time (TAT, ns on the limiter's monotonic
/// clock) and the limit it was counted with. The limit is kept so that a changed limit carries
/// the usage over as a number of requests rather than as a fraction of the window.
struct gcra_window {
  int64_t tat = 0;
  int64_t limit = 0;  ///< 0: nothing counted yet
};

/// A key's whole limiter state; 32 bytes, small enough to park while the key's actor is stopped.
struct limiter_state {
  gcra_window minute;
  gcra_window hour;

  /// True when both windows are fully replenished at `now_ns` (both TATs at or before it), so
  /// dropping the state changes no decision.
  bool replenished_at(int64_t now_ns) const { return minute.tat <= now_ns && hour.tat <= now_ns; }
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
  /// both. A refused request consumes nothing. `now_ns` is on a monotonic clock.
  virtual limit_decision check_and_consume(const core::rate_limit& limits, int64_t now_ns) = 0;

  /// What must be kept while the key's actor is stopped so a respawned actor continues where
  /// this one left off; nullopt when nothing needs keeping at `now_ns`.
  virtual std::optional<limiter_state> state_to_park(int64_t now_ns) const = 0;
};

/// GCRA in this process: for one instance (or REDIS_URL unset).
class local_rate_limiter final : public rate_limiter {
 public:
  explicit local_rate_limiter(limiter_state initial = {}) : state_(initial) {}

  limit_decision check_and_consume(const core::rate_limit& limits, int64_t now_ns) override;
  std::optional<limiter_state> state_to_park(int64_t now_ns) const override;

  const limiter_state& state() const { return state_; }

 private:
  limiter_state state_;
};

/// The GCRA step itself, on any state: both windows checked, both counted only when both admit.
///
/// A window of length W and limit L has an emission interval T = ceil(W / L) ns and a capacity
/// of L * T ns; its level is how far its TAT lies ahead of now (0 once it is in the past). A
/// request is admitted when level + T <= capacity, and an admission moves the TAT to
/// max(TAT, now) + T. So a key idle for W gets a burst of exactly L at once, then one request
/// per T; rounding T up keeps the long-run rate at or under L per W. Nothing is aligned to the
/// wall clock, so there is no window edge where a fixed window would admit L on each side.
///
/// The bound, honestly: in any span of length S at most L + S / T requests are admitted (the
/// burst plus what drained during the span). Hammered from idle, a key limited to L per minute
/// therefore gets L at once and then one every W / L: up to 2L - 1 within the first 60 s, then
/// one every W / L for as long as it keeps hammering. GCRA bounds the burst and the rate; it
/// does not bound every rolling minute to L.
limit_decision gcra_check_and_consume(limiter_state& state, const core::rate_limit& limits,
                                      int64_t now_ns);

}  // namespace datahub::actors
