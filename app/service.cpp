// `datahub serve`. Startup order: logging, migrations (under the advisory lock, retried while
// PostgreSQL is not up yet), actor system, pool, ADMIN_API_KEY bootstrap, routes, HTTP.
// Shutdown (SPEC 7): readiness 503 at once, serve on for SHUTDOWN_DRAIN_MS, close the listener,
// let requests in flight finish (SHUTDOWN_TIMEOUT_MS), flush usage, stop the actors and the
// pool, exit 0.
#include "app/service.hpp"

#include <condition_variable>
#include <csignal>
#include <future>
#include <mutex>
#include <thread>
#include <variant>

#include <malloc.h>

#include <caf/all.hpp>

#include "actors/key_registry.hpp"
#include "actors/usage_recorder.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/secrets.hpp"
#include "http/admin_api.hpp"
#include "http/health.hpp"
#include "http/proxy.hpp"
#include "http/router.hpp"
#include "http/routes.hpp"
#include "http/server.hpp"
#include "persistence/db_pool.hpp"
#include "persistence/key_store.hpp"
#include "persistence/migrator.hpp"
#include "persistence/usage_store.hpp"

using liveness_callback = std::function<void(bool)>;
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(liveness_callback)

namespace datahub::app {

namespace {

using namespace std::chrono_literals;

/// Applies migrations, retrying for up to a minute while PostgreSQL is unreachable. A checksum
/// mismatch or a failing migration stops the start.
bool migrate_on_start(const config::settings& s) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (true) {
    // The migrator logs each migration it applies.
    auto applied = persistence::apply_migrations(s.database_url);
    if (applied)
      return true;
    const auto& err = applied.error();
    if (err.code != persistence::db_errc::unavailable ||
        std::chrono::steady_clock::now() > deadline) {
      core::log_error(
          "Cannot apply database migrations; refusing to start",
          {{"error", std::string{persistence::to_string(err.code)}}, {"detail", err.detail}});
      return false;
    }
    core::log_warn("PostgreSQL is not reachable yet; retrying migrations",
                   {{"detail", err.detail}});
    std::this_thread::sleep_for(2s);
  }
}

bool bootstrap_admin_key(const config::settings& s, persistence::key_store& keys) {
  if (!s.admin_api_key)
    return true;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (true) {
    std::promise<persistence::db_result<core::api_key>> promise;
    auto future = promise.get_future();
    keys.ensure_admin_key(
        core::hash_secret(s.api_key_salt, *s.admin_api_key), core::display_prefix(*s.admin_api_key),
        std::string{core::to_string(*core::check_secret_format(*s.admin_api_key))},
        [&promise](persistence::db_result<core::api_key> r) { promise.set_value(std::move(r)); });
    auto result = future.get();
    if (result) {
      core::log_info("Admin key ensured", {{"keyId", result->id}});
      return true;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      core::log_error("Cannot ensure ADMIN_API_KEY", {{"detail", result.error().detail}});
      return false;
    }
    std::this_thread::sleep_for(1s);
  }
}

/// Housekeeping on its own thread: refreshes datahub_active_api_keys every 15 s, and hands
/// memory back to the operating system after many key actors went idle (glibc keeps freed
/// memory otherwise, and the RSS of an instance that once served a burst of keys would stay at
/// its peak).
class housekeeping {
 public:
  housekeeping(persistence::key_store& keys, actors::key_registry& registry, core::metrics& m)
      : keys_(keys), registry_(registry), metrics_(m) {
    thread_ = std::thread([this] { loop(); });
  }
  ~housekeeping() {
    {
      std::lock_guard<std::mutex> lock{mutex_};
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void loop() {
    constexpr auto tick = 1s;
    constexpr int gauge_every = 15;
    constexpr size_t trim_after_stopped = 1000;
    std::unique_lock<std::mutex> lock{mutex_};
    size_t high_water = 0;
    for (int n = 0; !stop_; ++n) {
      lock.unlock();
      if (n % gauge_every == 0) {
        keys_.count_active([this](persistence::db_result<int64_t> r) {
          if (r)
            metrics_.active_api_keys.Add({}).Set(static_cast<double>(r.value()));
        });
      }
      const size_t live = registry_.live_actors();
      high_water = std::max(high_water, live);
      if (high_water - live >= trim_after_stopped) {
        malloc_trim(0);
        high_water = live;
      }
      lock.lock();
      cv_.wait_for(lock, tick, [this] { return stop_; });
    }
  }

  persistence::key_store& keys_;
  actors::key_registry& registry_;
  core::metrics& metrics_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

int hardware_threads() {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace

int serve(const config::settings& s) {
  // Signals are taken by sigwait on this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  core::init_logging(
      {s.log_level, s.log_fmt == config::log_format::json, std::string{config::to_string(s.env)}});
  core::log_info("Starting", {{"port", static_cast<int64_t>(s.port)}});

  std::shared_ptr<const http::route_table> initial_routes;
  if (s.routes_file) {
    auto loaded = http::load_routes(*s.routes_file);
    if (auto* errors = std::get_if<std::vector<std::string>>(&loaded)) {
      for (const auto& e : *errors)
        core::log_error("Invalid routes file", {{"file", *s.routes_file}, {"problem", e}});
      core::shutdown_logging();
      return 2;
    }
    initial_routes = std::get<0>(loaded);
  }

  if (!migrate_on_start(s)) {
    core::shutdown_logging();
    return 1;
  }

  core::metrics metrics;
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", s.actor_threads > 0 ? s.actor_threads : hardware_threads());
  cfg.set("logger.verbosity", caf::atom("quiet"));
  // An idle worker waits on its condition variable (woken by the next message) after a short
  // spin, instead of CAF's default of sleeping in 50 us steps for a while: the sleeps delay
  // messages and the wake-ups take CPU from the I/O threads on a small machine.
  cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
  caf::actor_system system{cfg};

  auto pool = persistence::db_pool::start(
      system,
      persistence::db_pool_options{s.database_url, s.database_pool_size,
                                   static_cast<size_t>(s.database_queue_max), s.database_timeout},
      metrics);
  persistence::key_store keys{pool, s.default_limits};
  persistence::usage_store usage_db{pool};
  if (!bootstrap_admin_key(s, keys)) {
    pool->stop();
    core::shutdown_logging();
    return 1;
  }

  // Held by pointer so that shutdown can destroy them (and with them every admission still in
  // flight) while the HTTP server's io_contexts still exist to receive late answers.
  auto registry_ptr = std::make_unique<actors::key_registry>(system, keys, s, metrics);
  auto usage_ptr = std::make_unique<actors::usage_recorder>(system, usage_db, s, metrics);
  auto& registry = *registry_ptr;
  auto& usage = *usage_ptr;
  registry.start();
  auto chores = std::make_unique<housekeeping>(keys, registry, metrics);

  http::route_holder routes;
  if (initial_routes)
    routes.replace(initial_routes);

  auto liveness_actor = system.spawn(
      []() -> caf::behavior { return {[](const liveness_callback& reply) { reply(true); }}; });
  http::health health{pool,
                      [liveness_actor](liveness_callback reply) {
                        caf::anon_send(liveness_actor, std::move(reply));
                      },
                      metrics, s.redis_url.has_value()};
  http::admin_api admin{s, keys, registry, metrics};
  http::proxy data_plane{s, routes, registry, usage, metrics};
  http::router router{health, admin, data_plane};

  http::server_options opts;
  opts.bind_address = s.bind_address;
  opts.port = s.port;
  opts.max_body_bytes = s.max_body_bytes;
  opts.max_header_bytes = s.max_header_bytes;
  opts.header_timeout = s.header_timeout;
  opts.idle_timeout = s.idle_timeout;
  opts.max_pipelined = s.max_pipelined;
  opts.io_threads = s.io_threads > 0 ? s.io_threads : hardware_threads();
  http::server server{opts, [&router](std::shared_ptr<http::exchange> ex) { router(ex); }, metrics};
  try {
    server.start();
  } catch (const std::exception& e) {
    core::log_error("Cannot start the HTTP server", {{"detail", e.what()}});
    registry.stop();
    usage.stop();
    pool->stop();
    caf::anon_send_exit(liveness_actor, caf::exit_reason::user_shutdown);
    core::shutdown_logging();
    return 1;
  }
  core::log_info("Listening",
                 {{"address", s.bind_address},
                  {"port", static_cast<int64_t>(server.port())},
                  {"routes", static_cast<int64_t>(routes.current()->routes().size())}});

  while (true) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      if (!s.routes_file) {
        core::log_warn("SIGHUP: no ROUTES_FILE configured; nothing to reload");
        continue;
      }
      auto loaded = http::load_routes(*s.routes_file);
      if (auto* errors = std::get_if<std::vector<std::string>>(&loaded)) {
        for (const auto& e : *errors)
          core::log_error("Routes reload refused; the previous routes stay in force",
                          {{"file", *s.routes_file}, {"problem", e}});
      } else {
        routes.replace(std::get<0>(loaded));
        core::log_info("Routes reloaded",
                       {{"routes", static_cast<int64_t>(routes.current()->routes().size())}});
      }
      continue;
    }
    core::log_info("Shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
    break;
  }

  health.set_shutting_down();
  std::this_thread::sleep_for(s.shutdown_drain);
  server.stop_accepting();
  const bool drained = server.drain(s.shutdown_timeout);
  if (!drained)
    core::log_warn("Shutdown timeout reached with requests in flight",
                   {{"inFlight", server.in_flight()}});
  server.stop();
  if (!usage.flush(s.database_timeout.count() * 2))
    core::log_warn("Usage counts could not be written before exit");
  registry.stop();
  usage.stop();
  chores.reset();
  registry_ptr.reset();
  usage_ptr.reset();
  pool->stop();
  caf::anon_send_exit(liveness_actor, caf::exit_reason::user_shutdown);
  core::log_info("Stopped");
  core::shutdown_logging();
  return 0;
}

}  // namespace datahub::app
