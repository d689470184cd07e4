// /health (startup), /health/live (liveness) and /health/ready (readiness) from SPEC 6, and the
// /metrics exposition. Readiness asks PostgreSQL and the schema on every call, with the
// pool's own timeouts, so a probe never hangs.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "http/exchange.hpp"

namespace datahub::core {
class metrics;
}
namespace datahub::persistence {
class db_pool;
}

namespace datahub::http {

class health {
 public:
  /// `actors_alive` answers whether the actor system still processes messages; it calls its
  /// argument with the answer from any thread.
  using liveness_probe = std::function<void(std::function<void(bool)>)>;

  /// `redis_configured`: REDIS_URL is set. This release keeps limits per instance, so Redis is
  /// reported as `skipped`, never as a failure.
  health(std::shared_ptr<persistence::db_pool> db, liveness_probe actors_alive,
         core::metrics& metrics, bool redis_configured = false);

  /// Readiness turns false for good when shutdown starts.
  void set_shutting_down() { shutting_down_ = true; }

  /// True for `/health`, `/health/live`, `/health/ready`, `/metrics`.
  static bool owns(std::string_view path);

  void handle(std::shared_ptr<exchange> ex);

 private:
  void ready(std::shared_ptr<exchange> ex);

  std::shared_ptr<persistence::db_pool> db_;
  liveness_probe actors_alive_;
  core::metrics& metrics_;
  std::atomic<bool> shutting_down_{false};
  bool redis_configured_ = false;
};

}  // namespace datahub::http
