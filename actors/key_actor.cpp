// The key actor: admission checks for one key, its limiter, and its idle stop.
#include "actors/key_actor.hpp"

#include <algorithm>
#include <utility>

#include <caf/stateful_actor.hpp>

namespace datahub::actors {

pending_admit::~pending_admit() {
  if (answered_)
    return;
  if (args_.resubmits < max_resubmits) {
    if (auto host = host_.lock()) {
      ++args_.resubmits;
      host->resubmit(std::move(args_));
      return;
    }
  }
  args_.done(unkeyed_admission(admission::verdict::unavailable));
}

void pending_admit::answer(admission result) {
  if (answered_)
    return;
  answered_ = true;
  args_.done(std::move(result));
}

admission unkeyed_admission(admission::verdict verdict) {
  admission a;
  a.result = verdict;
  return a;
}

admission decide_admission(const key_record& key, const admit_args& args, rate_limiter& limiter,
                           const core::rate_limit& default_limits, core::timestamp wall_now,
                           int64_t now_ns) {
  if (!key || key->status_at(wall_now) != core::key_status::active)
    return unkeyed_admission(admission::verdict::invalid_key);

  admission a;
  a.key = key;
  if (!key->has_scopes(args.required_scopes)) {
    a.result = admission::verdict::insufficient_scope;
    return a;
  }
  if (!args.count) {
    a.result = admission::verdict::admitted;
    return a;
  }

  const auto d = limiter.check_and_consume(key->limits.value_or(default_limits), now_ns);
  a.limits_checked = true;
  a.minute = d.minute;
  a.hour = d.hour;
  if (d.admitted) {
    a.result = admission::verdict::admitted;
  } else {
    a.result = admission::verdict::rate_limited;
    a.retry_after_seconds = d.retry_after_seconds;
    a.limited_by = d.limited_by;
  }
  return a;
}

namespace {

using self_ptr = key_actor_type::stateful_pointer<key_actor_state>;

std::chrono::milliseconds tick_period(const key_actor_config& cfg) {
  // Idle stop happens between idle_timeout and 1.25 * idle_timeout after the last request.
  return std::max(std::chrono::milliseconds{10}, cfg.idle_timeout / 4);
}

void schedule_tick(self_ptr self) {
  self->delayed_send(self, tick_period(self->state.cfg), tick_atom::value);
}

/// Unregisters from the registry, parking the limiter state; no new request is sent here after.
void retire(self_ptr self) {
  auto& st = self->state;
  if (auto host = st.cfg.host.lock())
    host->retire(st.cfg.key_hash, self->address(), st.limiter->state_to_park(st.cfg.clock()));
}

/// Unregisters and stops. Whatever is still in the mailbox is dropped by CAF, and each dropped
/// request resubmits itself to the registry, which spawns a successor with the parked state.
void retire_and_quit(self_ptr self) {
  retire(self);
  self->quit();
}

void handle_admit(self_ptr self, const admit_ptr& request) {
  auto& st = self->state;
  const int64_t now = st.cfg.clock();
  st.last_request_ns = now;
  auto result = decide_admission(st.key, request->args(), *st.limiter, st.cfg.default_limits,
                                 core::now(), now);
  if (result.result == admission::verdict::rate_limited) {
    if (auto host = st.cfg.host.lock())
      host->count_rate_limited(st.key->id, result.limited_by);
  }
  request->answer(std::move(result));
}

/// Keeps the newer of two records of the same key; a raised limit applies to the next request
/// while the limiter keeps what was already counted.
void adopt(key_actor_state& st, const key_record& key) {
  if (key && (!st.key || key->updated_at >= st.key->updated_at))
    st.key = key;
}

key_actor_type::behavior_type ready(self_ptr self) {
  return {
      [=](admit_atom, const admit_ptr& request) { handle_admit(self, request); },
      [=](update_atom, const key_record& key) { adopt(self->state, key); },
      [=](loaded_atom, const load_outcome& outcome) {
        if (outcome.result == load_outcome::kind::found)
          adopt(self->state, outcome.key);
      },
      [=](tick_atom) {
        auto& st = self->state;
        const auto idle_ns = std::chrono::nanoseconds{st.cfg.idle_timeout}.count();
        if (st.cfg.clock() - st.last_request_ns >= idle_ns) {
          retire_and_quit(self);
          return;
        }
        schedule_tick(self);
      },
  };
}

void become_ready(self_ptr self, const key_record& key) {
  auto& st = self->state;
  adopt(st, key);
  st.last_request_ns = st.cfg.clock();
  self->become(ready(self));
  auto waiting = std::move(st.waiting);
  st.waiting = {};
  for (auto& request : waiting)
    handle_admit(self, request);
}

/// Unregisters, answers every waiting request with `verdict`, then stops: an unknown key or a
/// failed lookup holds no actor. Unregistering comes first, so a request its client sends after
/// seeing the answer reaches a fresh actor (and, after a failure, a fresh lookup) instead of
/// this one's mailbox, where it would only be dropped and resubmitted.
void give_up(self_ptr self, admission::verdict verdict) {
  auto& st = self->state;
  auto waiting = std::move(st.waiting);
  st.waiting = {};
  retire(self);
  for (auto& request : waiting)
    request->answer(unkeyed_admission(verdict));
  self->quit();
}

key_actor_type::behavior_type loading(self_ptr self) {
  return {
      [=](admit_atom, const admit_ptr& request) {
        auto& st = self->state;
        if (st.waiting.size() >= st.cfg.pending_max) {
          if (auto host = st.cfg.host.lock())
            host->count_queue_rejection();
          request->answer(unkeyed_admission(admission::verdict::unavailable));
          return;
        }
        st.waiting.push_back(request);
      },
      [=](update_atom, const key_record& key) { become_ready(self, key); },
      [=](loaded_atom, const load_outcome& outcome) {
        switch (outcome.result) {
          case load_outcome::kind::found:
            become_ready(self, outcome.key);
            break;
          case load_outcome::kind::unknown:
            give_up(self, admission::verdict::invalid_key);
            break;
          case load_outcome::kind::failed:
            give_up(self, admission::verdict::unavailable);
            break;
        }
      },
      [=](tick_atom) {
        auto& st = self->state;
        const auto limit_ns = std::chrono::nanoseconds{st.cfg.load_timeout}.count();
        if (st.cfg.clock() - st.started_ns >= limit_ns) {
          give_up(self, admission::verdict::unavailable);
          return;
        }
        schedule_tick(self);
      },
  };
}

}  // namespace

key_actor_type::behavior_type key_actor(self_ptr self, key_actor_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  if (!st.cfg.clock) {
    st.cfg.clock = [] {
      return std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
          .count();
    };
  }
  st.limiter = st.cfg.make_limiter ? st.cfg.make_limiter(st.cfg.key_hash, st.cfg.parked)
                                   : std::make_unique<local_rate_limiter>(st.cfg.parked);
  st.started_ns = st.cfg.clock();
  st.last_request_ns = st.started_ns;
  st.key = st.cfg.key;
  st.cfg.key = nullptr;
  schedule_tick(self);
  if (st.key)
    return ready(self);
  return loading(self);
}

}  // namespace datahub::actors
