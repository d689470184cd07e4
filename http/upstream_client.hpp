// The proxy's HTTP/1.1 client to upstreams (SPEC 3.3): one request at a time per connection,
// over a pool of idle keep-alive connections per upstream host:port. Each io_context has its
// own pool (an Asio service), so a pooled socket is only ever used on the thread that made it.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "http/exchange.hpp"
#include "http/routes.hpp"

namespace datahub::http {

/// Idle connections kept per upstream and io_context; more are closed when released.
constexpr size_t max_idle_per_upstream = 64;

/// A pooled connection idle for longer is closed instead of reused: upstreams close idle
/// connections on their own timers, and an old one is the likeliest to be half-closed.
constexpr std::chrono::seconds max_idle_age{30};

struct upstream_limits {
  /// For the whole exchange: resolving, connecting, writing and reading the whole answer.
  std::chrono::milliseconds timeout{30000};
  size_t max_body_bytes = 10 * 1024 * 1024;
  size_t max_header_bytes = 64 * 1024;
};

struct upstream_result {
  enum class outcome {
    ok,            ///< `res` holds the upstream's answer
    unavailable,   ///< not resolved, refused, reset or closed before a whole answer
    timeout,       ///< no whole answer within the timeout
    bad_response,  ///< malformed or ambiguous framing, an upgrade, or a body over the limit
  };
  outcome result = outcome::unavailable;
  response res;
  std::string detail;  ///< what went wrong, for the log; never holds request data
};

/// Sends `req` to `target` and calls `done` with the outcome, on `executor`. Must be called on
/// the thread running `executor`'s io_context. A reused connection that fails before the first
/// byte of an answer (the upstream closed it while idle) is retried once on a fresh connection
/// when the method is idempotent; other failures are reported as they are. `target` must stay
/// alive until `done` has run (the proxy's callback holds the route table it belongs to).
void send_upstream(const boost::asio::any_io_executor& executor, const upstream_target& target,
                   request req, const upstream_limits& limits,
                   std::function<void(upstream_result)> done);

/// Idle connections pooled for `target` in `executor`'s io_context. Call on its thread.
size_t idle_upstream_connections(const boost::asio::any_io_executor& executor,
                                 const upstream_target& target);

}  // namespace datahub::http
