// Rate-limit counting for SPEC 3.4, actors layer: a key's minute and hour windows are checked and
// counted in one step with GCRA (generic cell rate algorithm). The local implementation keeps the
// state inside the key's actor; a shared implementation (Redis) can fill the same interface.
#pragma once

#include <cstdint>
#include <optional>

#include "actors/key_registry.hpp"
#include "core/api_key.hpp"

namespace datahub::actors {

/// One window's GCRA state: the theoretical arrival time (ns on the limiter's monotonic clock)
/// and the limit it was counted with, so a changed limit keeps the usage in requests.
struct gcra_window {
  int64_t tat = 0;
  int64_t limit = 0;  ///< 0: never counted
};

/// A key's whole limiter state; 32 bytes, small enough to park while the key's actor is stopped.
struct gcra_state {
  gcra_window minute;
  gcra_window hour;

  /// True when both windows are full again at `now_ns` (the state carries no usage).
  bool replenished_at(int64_t now_ns) const {
    return minute.tat <= now_ns && hour.tat <= now_ns;
  }
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
  /// both. A refused request consumes nothing. `now_ns` is monotonic.
  virtual limit_decision check_and_consume(const core::rate_limit& limits, int64_t now_ns) = 0;

  /// What must be kept while the key's actor is stopped so a respawned actor continues where
  /// this one left off; nullopt when nothing needs keeping at `now_ns`.
  virtual std::optional<gcra_state> state_to_park(int64_t now_ns) const = 0;
};

/// GCRA in this process: exact for one instance (or REDIS_URL unset).
class local_rate_limiter final : public rate_limiter {
 public:
  explicit local_rate_limiter(gcra_state initial = {}) : state_(initial) {}

  limit_decision check_and_consume(const core::rate_limit& limits, int64_t now_ns) override;
  std::optional<gcra_state> state_to_park(int64_t now_ns) const override;

  const gcra_state& state() const { return state_; }

 private:
  gcra_state state_;
};

/// The GCRA step itself, on any state: both windows checked, both counted only when both admit.
///
/// Each window of limit L over period P has an emission interval T = ceil(P / L) ns and a
/// capacity of L * T ns; its level is how far its TAT lies ahead of now. A request is admitted
/// when level + T <= L * T, which lets a burst of exactly L through from an idle window and
/// then one request per T. Rounding T up keeps the long-run rate at or under L per P; the error
/// is below one nanosecond per request. All arithmetic is on integers, so nothing drifts.
limit_decision gcra_check_and_consume(gcra_state& state, const core::rate_limit& limits,
                                      int64_t now_ns);

}  // namespace datahub::actors
