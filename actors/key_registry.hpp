// The data plane's view of API keys: finds a key by the hash of its secret (cache first,
// PostgreSQL on a miss), checks its status and scopes, and checks-and-counts its rate limits in
// the key's own actor. One actor per key in use; it stops when the key goes idle.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/api_key.hpp"

namespace caf {
class actor_system;
}

namespace datahub::config {
struct settings;
}

namespace datahub::core {
class metrics;
}

namespace datahub::persistence {
class key_store;
}

namespace datahub::actors {

class key_source;
class rate_limiter;
struct limiter_state;

/// One window's state after a check, as the rate-limit headers show it.
struct window_state {
  const char* name = "minute";  ///< `minute` or `hour`
  int64_t window_seconds = 60;
  int64_t limit = 0;
  int64_t remaining = 0;      ///< requests still admitted now
  int64_t reset_seconds = 0;  ///< seconds until `remaining` is back to `limit` (0 when full),
                              ///< or, at 0 remaining, until the next request is admitted (>= 1)
};

/// The answer to one admission request.
struct admission {
  enum class verdict {
    admitted,            ///< go on; counted against both windows
    invalid_key,         ///< unknown, revoked or expired
    insufficient_scope,  ///< known and valid, but lacks a required scope
    rate_limited,        ///< over a window; nothing was counted
    unavailable,         ///< the key could not be looked up (PostgreSQL down, queue full)
  };
  verdict result = verdict::invalid_key;
  std::shared_ptr<const core::api_key> key;  ///< set unless invalid_key or unavailable
  window_state minute;
  window_state hour;
  bool limits_checked = false;  ///< false when the check stopped before the rate limits
  /// Whole seconds until a refused request would be admitted (>= 1); rate_limited only.
  int64_t retry_after_seconds = 0;
  /// Which window refused (`minute` or `hour`); rate_limited only.
  const char* limited_by = "minute";

  /// The window the `RateLimit` header shows. On a refusal the one named by `limited_by` (the
  /// refusing window with the longest wait), so its reset equals retry_after_seconds; otherwise
  /// the one closest to running out (fewest remaining; on a tie, the longer reset).
  const window_state& tightest() const;
};

/// The registry's bounds and hooks; the defaults suit production.
struct registry_options {
  /// Key records kept after their actors stopped (about 1 KiB each); beyond it an arbitrary
  /// entry is evicted and that key is read from PostgreSQL again when next used.
  size_t key_cache_max = 100000;
  /// Unknown hashes remembered, so a flood of well-formed unknown keys stays off PostgreSQL.
  size_t negative_cache_max = 100000;
  std::chrono::milliseconds negative_ttl{5000};
  /// Requests a key actor holds while its key is being read.
  size_t pending_max = 1024;
  /// Nanoseconds on a monotonic clock, for limits, timeouts and cache expiry; empty:
  /// std::chrono::steady_clock, so a step of the wall clock moves no limit and no timer.
  std::function<int64_t()> clock;
  /// Makes a key's limiter from its parked state; empty: the local GCRA limiter
  /// (rate_limiter.hpp).
  std::function<std::unique_ptr<rate_limiter>(const std::string&, limiter_state)> make_limiter;
};

/// One admission request, for admit_all.
struct admission_request {
  std::string key_hash;
  std::vector<std::string> required_scopes;
  bool count = true;
  std::function<void(admission)> done;
};

class key_registry {
 public:
  /// `store` must outlive the registry.
  key_registry(caf::actor_system& system, persistence::key_store& store,
               const config::settings& settings, core::metrics& metrics);
  key_registry(caf::actor_system& system, std::shared_ptr<key_source> source,
               const config::settings& settings, core::metrics& metrics,
               registry_options options = {});
  ~key_registry();

  key_registry(const key_registry&) = delete;
  key_registry& operator=(const key_registry&) = delete;

  /// Starts the change poller (keys changed by other instances take effect within
  /// KEY_REFRESH_INTERVAL_MS).
  void start();
  void stop();

  /// Admits a request made with the secret whose hash is `key_hash`. With `count` false only
  /// the key, its status and scopes are checked (the admin API). `done` runs on an actor
  /// thread, exactly once.
  void admit(std::string key_hash, std::vector<std::string> required_scopes, bool count,
             std::function<void(admission)> done);

  /// admit() for several requests at once. They reach the actor threads in one message, so a
  /// burst of requests read in one turn of an I/O loop costs one hand-over between threads,
  /// not one each. Each `done` runs exactly once, as with admit().
  void admit_all(std::vector<admission_request> requests);

  /// A key changed through this instance's admin API: cached state and the key's actor see
  /// it on the next request.
  void key_changed(const core::api_key& key);

  /// Key actors alive now.
  size_t live_actors() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace datahub::actors
