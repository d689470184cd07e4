// The data plane (SPEC 3.2 steps 2-7 for routed paths): route match, method, key, scopes, rate
// limits through the key registry, then forwarding to the route's upstream over pooled
// keep-alive connections, with the rate-limit headers on every answer.
#pragma once

#include <memory>

#include "http/exchange.hpp"
#include "http/routes.hpp"

namespace datahub::config {
struct settings;
}
namespace datahub::core {
class metrics;
}
namespace datahub::actors {
class key_registry;
class usage_recorder;
}  // namespace datahub::actors

namespace datahub::http {

/// Lives as long as the server that dispatches to it: admissions and upstream calls in flight
/// call back into it on the sessions' threads.
class proxy {
 public:
  proxy(const config::settings& settings, route_holder& routes, actors::key_registry& keys,
        actors::usage_recorder& usage, core::metrics& metrics);
  ~proxy();

  /// Handles a request whose path passed the request rules and is not an admin, health or
  /// metrics path. `ex->path` and `ex->query` are set.
  void handle(std::shared_ptr<exchange> ex);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace datahub::http
