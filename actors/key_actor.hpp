// One actor per API key in use (one per key hash), actors layer: it holds the key's record and
// its rate-limit state, answers admission requests in arrival order, and stops itself when the
// key goes idle. Its states:
//
//   loading --loaded(found) or update--> ready --no request for key_idle_timeout--> stopped
//   loading --loaded(unknown|failed), or no answer within the load timeout--> stopped
//
// Before stopping it unregisters itself from its registry (parking its limiter state there), so
// no new request is sent to it; a request already in its mailbox is resubmitted (pending_admit).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/key_registry.hpp"
#include "actors/messages.hpp"
#include "actors/rate_limiter.hpp"
#include "core/api_key.hpp"

namespace datahub::actors {

/// The key actor's protocol. A tick is its own idle and load-timeout check.
using key_actor_type =
    caf::typed_actor<caf::reacts_to<admit_atom, admit_ptr>, caf::reacts_to<update_atom, key_record>,
                     caf::reacts_to<loaded_atom, load_outcome>, caf::reacts_to<tick_atom>>;

/// What one admission asks for.
struct admit_args {
  std::string key_hash;
  std::vector<std::string> required_scopes;
  bool count = true;
  std::function<void(admission)> done;
  int resubmits = 0;  ///< how often it was taken again from the top
};

/// What a key actor needs from its registry.
class key_actor_host {
 public:
  virtual ~key_actor_host() = default;

  /// Takes a request again from the top: its actor stopped before reading it.
  virtual void resubmit(admit_args args) = 0;

  /// Unregisters `self` as the actor of `key_hash` and keeps `parked` for its successor. Once
  /// this returns, no new request is sent to `self`.
  virtual void retire(const std::string& key_hash, const caf::actor_addr& self,
                      std::optional<limiter_state> parked) = 0;

  /// Counts a 429 in rate_limit_hits_total.
  virtual void count_rate_limited(const std::string& key_id, const char* window) = 0;

  /// Counts a request refused because the queue of a loading key actor was full.
  virtual void count_queue_rejection() = 0;
};

/// A request in flight, answered exactly once. Either answer() runs, or the last reference is
/// dropped unanswered (its actor stopped with the request still queued, or the send failed): then
/// the request is resubmitted to the registry, at most max_resubmits times, and after that (or
/// with the registry gone) answered `unavailable`. Shared, because CAF messages are copyable.
class pending_admit {
 public:
  static constexpr int max_resubmits = 3;

  pending_admit(admit_args args, std::weak_ptr<key_actor_host> host)
      : args_(std::move(args)), host_(std::move(host)) {}
  ~pending_admit();

  pending_admit(const pending_admit&) = delete;
  pending_admit& operator=(const pending_admit&) = delete;

  const admit_args& args() const { return args_; }

  /// Runs the callback; later calls do nothing.
  void answer(admission result);

 private:
  admit_args args_;
  std::weak_ptr<key_actor_host> host_;
  bool answered_ = false;
};

/// Makes a key's limiter, starting from a parked state (all zero for a fresh key).
using limiter_factory =
    std::function<std::unique_ptr<rate_limiter>(const std::string& key_hash, limiter_state parked)>;

struct key_actor_config {
  std::string key_hash;
  key_record key;  ///< null: the actor waits for `loaded`
  limiter_state parked;
  std::weak_ptr<key_actor_host> host;
  core::rate_limit default_limits;
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds load_timeout{10000};
  size_t pending_max = 1024;       ///< requests held while loading
  std::function<int64_t()> clock;  ///< monotonic ns, shared with the limiter
  limiter_factory make_limiter;    ///< empty: local GCRA limiter
};

struct key_actor_state {
  key_actor_config cfg;
  key_record key;
  std::unique_ptr<rate_limiter> limiter;
  std::vector<admit_ptr> waiting;  ///< while loading; at most cfg.pending_max
  int64_t started_ns = 0;
  int64_t last_request_ns = 0;

  static inline const char* name = "key_actor";
};

key_actor_type::behavior_type key_actor(key_actor_type::stateful_pointer<key_actor_state> self,
                                        key_actor_config cfg);

/// SPEC 3.2 steps 4 to 6 for one request: status, scopes, then (when counting) both windows.
admission decide_admission(const key_record& key, const admit_args& args, rate_limiter& limiter,
                           const core::rate_limit& default_limits, core::timestamp wall_now,
                           int64_t now_ns);

/// An admission that stops before the key is known (`invalid_key` or `unavailable`).
admission unkeyed_admission(admission::verdict verdict);

/// The requests of one key_registry::admit_all call, travelling in one message. A request it
/// still holds when it is destroyed (the message was dropped, the registry is gone) is answered
/// `unavailable`, so every request is answered exactly once.
struct admission_batch_holder {
  std::vector<admission_request> items;

  ~admission_batch_holder() {
    for (auto& r : items)
      if (r.done)
        r.done(unkeyed_admission(admission::verdict::unavailable));
  }
};

}  // namespace datahub::actors
