// The key registry: one key actor per key hash in use, the caches in front of PostgreSQL, and
// the poller that applies keys changed by other instances. Actors layer.
//
// Memory: a key actor exists only while its key is in use. Once it stopped, the registry keeps
// at most the key's record (bounded by key_cache_max) and, until both its windows are fully
// replenished, the 32-byte limiter state parked under its hash; a key used once and then idle
// costs about 1 KiB.
//
// Limiter state across an idle stop: key_idle_timeout (a minute by default) is shorter than the
// hour window, so dropping the state with the actor would hand a key that exhausted its hourly
// limit a fresh hour after one idle minute. An actor that stops before both its windows are
// replenished parks its state here, its successor starts from it, and the periodic purge drops
// parked states once both TATs are in the past (about an hour after the last admission at the
// latest). The parked map holds only keys used within the last hour, so it needs no further
// bound.
//
// Limits, timeouts and expiries here are measured on a monotonic clock, so a step of the wall
// clock moves none of them.
#include "actors/key_registry.hpp"

#include <atomic>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "actors/key_actor.hpp"
#include "actors/key_source.hpp"
#include "actors/messages.hpp"
#include "actors/rate_limiter.hpp"
#include "config/settings.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"

namespace datahub::actors {

const window_state& admission::tightest() const {
  if (result == verdict::rate_limited)
    return std::string_view{limited_by} == hour.name ? hour : minute;
  if (hour.remaining < minute.remaining)
    return hour;
  if (hour.remaining == minute.remaining && hour.reset_seconds > minute.reset_seconds)
    return hour;
  return minute;
}

namespace {

/// Keys changed within this long before the last change seen are read again, so a transaction
/// that committed after a later one was already seen is not missed.
constexpr auto poll_overlap = std::chrono::seconds{2};

/// A poll still unanswered after this long no longer blocks the next one.
constexpr auto poll_stuck_after = std::chrono::seconds{30};

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t to_ns(std::chrono::nanoseconds d) {
  return d.count();
}

/// Inserts into a bounded map, evicting an arbitrary entry when full: cheaper than LRU
/// bookkeeping, and an evicted entry costs only one more lookup.
template <class Map, class Value>
void bounded_put(Map& map, size_t max, const std::string& key, Value value) {
  auto it = map.find(key);
  if (it != map.end()) {
    it->second = std::move(value);
    return;
  }
  if (max == 0)
    return;
  if (map.size() >= max)
    map.erase(map.begin());
  map.emplace(key, std::move(value));
}

}  // namespace

class registry_core final : public key_actor_host,
                            public std::enable_shared_from_this<registry_core> {
 public:
  registry_core(caf::actor_system& system, std::shared_ptr<key_source> source,
                const config::settings& settings, core::metrics& metrics, registry_options options)
      : system_(system),
        source_(std::move(source)),
        default_limits_(settings.default_limits),
        idle_timeout_(settings.key_idle_timeout),
        // A lookup waits at most for the pool's queue and the query itself.
        load_timeout_(settings.database_timeout * 2 + std::chrono::seconds{1}),
        refresh_interval_(settings.key_refresh_interval),
        metrics_(metrics),
        options_(std::move(options)),
        actors_gauge_(metrics.key_actors.Add({})) {
    if (!options_.clock)
      options_.clock = steady_ns;
  }

  /// Spawns the helper actor; needs shared_from_this, so it runs after construction.
  void init() {
    std::weak_ptr<registry_core> weak = shared_from_this();
    const auto interval = refresh_interval_;
    helper_ = system_.spawn([weak, interval](caf::event_based_actor* self) -> caf::behavior {
      return {
          [=](answer_atom, const admit_ptr& request) {
            request->answer(unkeyed_admission(admission::verdict::invalid_key));
          },
          [=](batch_atom, const admission_batch& batch) {
            auto core = weak.lock();
            if (!core)
              return;  // the batch answers what it holds when it goes
            for (auto& r : batch->items) {
              admit_args args;
              args.key_hash = std::move(r.key_hash);
              args.required_scopes = std::move(r.required_scopes);
              args.count = r.count;
              args.done = std::move(r.done);
              r.done = nullptr;
              core->submit(std::move(args));
            }
          },
          [=](tick_atom) {
            auto core = weak.lock();
            if (!core || !core->polling_enabled())
              return;
            core->purge();
            core->poll();
            self->delayed_send(self, interval, tick_atom::value);
          },
      };
    });
  }

  void start() {
    {
      std::lock_guard<std::mutex> lock(poll_mutex_);
      if (polling_)
        return;
      polling_ = true;
      last_seen_ = core::now();
    }
    caf::anon_send(helper_, tick_atom::value);
  }

  void stop_polling() {
    std::lock_guard<std::mutex> lock(poll_mutex_);
    polling_ = false;
  }

  /// Stops every key actor; requests still queued are answered `unavailable`.
  void shutdown() {
    stop_polling();
    std::unordered_map<std::string, key_actor_type> actors;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
      actors.swap(actors_);
      actors_gauge_.Set(0);
    }
    for (auto& [hash, actor] : actors)
      caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(helper_, caf::exit_reason::user_shutdown);
  }

  void submit(admit_args args) {
    const int64_t now = options_.clock();
    key_actor_type target;
    bool unknown = false;
    bool spawned = false;
    bool needs_load = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopped_) {
        args.done(unkeyed_admission(admission::verdict::unavailable));
        return;
      }
      if (auto it = actors_.find(args.key_hash); it != actors_.end()) {
        target = it->second;
      } else {
        key_record key;
        if (auto c = cache_.find(args.key_hash); c != cache_.end())
          key = c->second;
        if (!key) {
          if (auto n = negative_.find(args.key_hash); n != negative_.end()) {
            if (n->second > now)
              unknown = true;
            else
              negative_.erase(n);
          }
        }
        if (!unknown) {
          target = spawn_locked(args.key_hash, std::move(key), needs_load);
          spawned = true;
        }
      }
    }
    auto request = std::make_shared<pending_admit>(std::move(args), weak_from_this());
    if (unknown) {
      caf::anon_send(helper_, answer_atom::value, std::move(request));
      return;
    }
    const std::string key_hash = request->args().key_hash;
    if (spawned)
      watch(key_hash, target);
    // The request goes into the new actor's mailbox before the lookup starts, so it is ahead of
    // the lookup's answer. Otherwise a fast failure reaches the actor first: it gives up with
    // nothing waiting, the request is dropped and resubmitted, and every resubmit spawns
    // another actor and repeats the lookup (up to four per request during an outage).
    caf::anon_send(target, admit_atom::value, std::move(request));
    if (needs_load)
      load(key_hash, target);
  }

  /// Hands a batch to the helper actor, which submits each request from an actor thread.
  void submit_batch(admission_batch batch) {
    caf::anon_send(helper_, batch_atom::value, std::move(batch));
  }

  /// A changed key, from this instance's admin API (`insert` true) or the poller.
  void apply_change(const core::api_key& changed, bool insert) {
    auto key = std::make_shared<const core::api_key>(changed);
    key_actor_type target;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      negative_.erase(key->key_hash);
      if (auto it = cache_.find(key->key_hash); it != cache_.end()) {
        if (key->updated_at >= it->second->updated_at)
          it->second = key;
      } else if (insert) {
        bounded_put(cache_, options_.key_cache_max, key->key_hash, key);
      }
      if (auto it = actors_.find(key->key_hash); it != actors_.end())
        target = it->second;
    }
    if (target)
      caf::anon_send(target, update_atom::value, key_record{key});
  }

  size_t live() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return actors_.size();
  }

  bool polling_enabled() const {
    std::lock_guard<std::mutex> lock(poll_mutex_);
    return polling_;
  }

  /// Drops expired negative entries and parked states whose windows are fully replenished.
  void purge() {
    const int64_t now = options_.clock();
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = negative_.begin(); it != negative_.end();)
      it = it->second <= now ? negative_.erase(it) : std::next(it);
    for (auto it = parked_.begin(); it != parked_.end();)
      it = it->second.replenished_at(now) ? parked_.erase(it) : std::next(it);
  }

  /// Asks for the keys changed since the last one seen (less the overlap); one poll at a time.
  void poll() {
    const int64_t now = options_.clock();
    core::timestamp since;
    {
      std::lock_guard<std::mutex> lock(poll_mutex_);
      if (poll_in_flight_ && now - poll_started_ns_ < to_ns(poll_stuck_after))
        return;
      poll_in_flight_ = true;
      poll_started_ns_ = now;
      since = last_seen_ - poll_overlap;
    }
    std::weak_ptr<registry_core> weak = shared_from_this();
    source_->changed_since(since, [weak](persistence::db_result<std::vector<core::api_key>> r) {
      if (auto core = weak.lock())
        core->on_polled(std::move(r));
    });
  }

  // --- key_actor_host ---

  void resubmit(admit_args args) override { submit(std::move(args)); }

  void retire(const std::string& key_hash, const caf::actor_addr& self,
              std::optional<limiter_state> parked) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = actors_.find(key_hash); it != actors_.end() && it->second.address() == self) {
      actors_.erase(it);
      actors_gauge_.Set(static_cast<double>(actors_.size()));
    }
    if (parked && !stopped_)
      parked_[key_hash] = *parked;
  }

  void count_rate_limited(const std::string& key_id, const char* window) override {
    metrics_.rate_limit_hits_total.Add({{"key_id", key_id}, {"limit_type", window}}).Increment();
  }

  void count_queue_rejection() override {
    metrics_.queue_rejections_total.Add({{"queue", "key_actor"}}).Increment();
  }

 private:
  /// Spawns the actor of `key_hash`, starting from its parked limiter state. Holds mutex_.
  key_actor_type spawn_locked(const std::string& key_hash, key_record key, bool& needs_load) {
    key_actor_config cfg;
    cfg.key_hash = key_hash;
    needs_load = !key;
    cfg.key = std::move(key);
    if (auto p = parked_.find(key_hash); p != parked_.end()) {
      cfg.parked = p->second;
      parked_.erase(p);
    }
    cfg.host = weak_from_this();
    cfg.default_limits = default_limits_;
    cfg.idle_timeout = idle_timeout_;
    cfg.load_timeout = load_timeout_;
    cfg.pending_max = options_.pending_max;
    cfg.clock = options_.clock;
    cfg.make_limiter = options_.make_limiter;
    // Spawning only schedules the actor; its behaviour runs later on a scheduler thread.
    auto actor = system_.spawn(key_actor, std::move(cfg));
    actors_.emplace(key_hash, actor);
    actors_gauge_.Set(static_cast<double>(actors_.size()));
    return actor;
  }

  /// Unregisters an actor that stopped without retiring (it failed). Called outside mutex_:
  /// attach_functor runs the functor at once if the actor is already gone.
  void watch(const std::string& key_hash, const key_actor_type& actor) {
    std::weak_ptr<registry_core> weak = weak_from_this();
    actor->attach_functor([weak, key_hash, addr = actor.address()] {
      if (auto core = weak.lock())
        core->forget(key_hash, addr);
    });
  }

  void forget(const std::string& key_hash, const caf::actor_addr& addr) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = actors_.find(key_hash); it != actors_.end() && it->second.address() == addr) {
      actors_.erase(it);
      actors_gauge_.Set(static_cast<double>(actors_.size()));
    }
  }

  void load(const std::string& key_hash, const key_actor_type& actor) {
    std::weak_ptr<registry_core> weak = weak_from_this();
    source_->find_by_hash(
        key_hash, [weak, key_hash, actor](persistence::db_result<std::optional<core::api_key>> r) {
          load_outcome outcome;
          if (auto core = weak.lock())
            outcome = core->on_loaded(key_hash, std::move(r));
          caf::anon_send(actor, loaded_atom::value, std::move(outcome));
        });
  }

  /// Files a lookup's result in the caches; DB errors are not cached.
  load_outcome on_loaded(const std::string& key_hash,
                         persistence::db_result<std::optional<core::api_key>> r) {
    load_outcome outcome;
    if (!r.ok()) {
      warn_limited("key lookup failed", r.error());
      outcome.result = load_outcome::kind::failed;
      return outcome;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (!r.value()) {
      outcome.result = load_outcome::kind::unknown;
      bounded_put(negative_, options_.negative_cache_max, key_hash,
                  options_.clock() + to_ns(options_.negative_ttl));
      return outcome;
    }
    outcome.result = load_outcome::kind::found;
    outcome.key = std::make_shared<const core::api_key>(std::move(*r.value()));
    // A change applied while the lookup ran is newer than what the lookup read.
    if (auto it = cache_.find(key_hash); it != cache_.end()) {
      if (it->second->updated_at > outcome.key->updated_at)
        outcome.key = it->second;
      else
        it->second = outcome.key;
    } else {
      bounded_put(cache_, options_.key_cache_max, key_hash, outcome.key);
    }
    return outcome;
  }

  void on_polled(persistence::db_result<std::vector<core::api_key>> r) {
    if (r.ok()) {
      core::timestamp latest{};
      for (const auto& key : r.value()) {
        apply_change(key, false);
        latest = std::max(latest, key.updated_at);
      }
      std::lock_guard<std::mutex> lock(poll_mutex_);
      last_seen_ = std::max(last_seen_, latest);
      poll_in_flight_ = false;
      return;
    }
    warn_limited("key change poll failed", r.error());
    std::lock_guard<std::mutex> lock(poll_mutex_);
    poll_in_flight_ = false;
  }

  /// At most one warning per kind of failure every 10 s: an outage must not flood the log.
  void warn_limited(const char* what, const persistence::db_error& error) {
    const int64_t now = options_.clock();
    int64_t last = last_warn_ns_.load();
    if (now - last < to_ns(std::chrono::seconds{10}) && last != 0)
      return;
    if (!last_warn_ns_.compare_exchange_strong(last, now))
      return;
    core::log_warn(what, {{"error", to_string(error.code)}, {"detail", error.detail}});
  }

  caf::actor_system& system_;
  std::shared_ptr<key_source> source_;
  const core::rate_limit default_limits_;
  const std::chrono::milliseconds idle_timeout_;
  const std::chrono::milliseconds load_timeout_;
  const std::chrono::milliseconds refresh_interval_;
  core::metrics& metrics_;
  registry_options options_;
  prometheus::Gauge& actors_gauge_;
  caf::actor helper_;  ///< answers negative-cache hits on an actor thread; ticks the poller

  mutable std::mutex mutex_;  ///< guards the maps below and stopped_
  std::unordered_map<std::string, key_actor_type> actors_;
  std::unordered_map<std::string, key_record> cache_;
  std::unordered_map<std::string, int64_t> negative_;  ///< hash -> expiry (clock ns)
  std::unordered_map<std::string, limiter_state> parked_;
  bool stopped_ = false;

  mutable std::mutex poll_mutex_;  ///< guards the poll state below
  bool polling_ = false;
  bool poll_in_flight_ = false;
  int64_t poll_started_ns_ = 0;
  core::timestamp last_seen_{};

  std::atomic<int64_t> last_warn_ns_{0};
};

struct key_registry::impl {
  std::shared_ptr<registry_core> core;
};

key_registry::key_registry(caf::actor_system& system, std::shared_ptr<key_source> source,
                           const config::settings& settings, core::metrics& metrics,
                           registry_options options)
    : impl_(std::make_unique<impl>()) {
  impl_->core = std::make_shared<registry_core>(system, std::move(source), settings, metrics,
                                                std::move(options));
  impl_->core->init();
}

key_registry::~key_registry() {
  if (impl_)
    impl_->core->shutdown();
}

void key_registry::start() {
  impl_->core->start();
}

void key_registry::stop() {
  impl_->core->stop_polling();
}

void key_registry::admit(std::string key_hash, std::vector<std::string> required_scopes, bool count,
                         std::function<void(admission)> done) {
  admit_args args;
  args.key_hash = std::move(key_hash);
  args.required_scopes = std::move(required_scopes);
  args.count = count;
  args.done = std::move(done);
  impl_->core->submit(std::move(args));
}

void key_registry::admit_all(std::vector<admission_request> requests) {
  if (requests.empty())
    return;
  auto batch = std::make_shared<admission_batch_holder>();
  batch->items = std::move(requests);
  impl_->core->submit_batch(std::move(batch));
}

void key_registry::key_changed(const core::api_key& key) {
  impl_->core->apply_change(key, true);
}

size_t key_registry::live_actors() const {
  return impl_->core->live();
}

}  // namespace datahub::actors
