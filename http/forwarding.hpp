// What the proxy changes in a request on its way upstream and in an answer on its way back
// (SPEC 3.3), and the rate-limit headers (SPEC 3.4). Pure functions over Beast messages, no I/O,
// so every rule here is testable without a socket.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "actors/key_registry.hpp"
#include "http/exchange.hpp"
#include "http/routes.hpp"

namespace datahub::http {

/// True for the headers that describe one connection and are never forwarded, in either
/// direction: Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
/// Proxy-Authorization, Proxy-Authenticate (case-insensitive).
bool is_hop_by_hop(std::string_view name);

/// True when a `Connection` header of `message` lists `name` (case-insensitive), making it
/// hop-by-hop for this message.
bool named_in_connection(const bh::fields& message, std::string_view name);

/// The path and query sent upstream for a request to `path` (and `query`, without `?`) on `r`:
/// the path, or with strip_prefix what follows the prefix (with a leading `/`), behind the
/// upstream's base path.
std::string upstream_target_of(const route& r, std::string_view path, std::string_view query);

/// Who and what the request is, as told to the upstream.
struct forward_context {
  std::string_view request_id;
  std::string_view remote_ip;
  std::string_view key_id;
  /// The key came in `Authorization`; that header is then dropped, not forwarded.
  bool key_in_authorization = false;
};

/// The request sent upstream for `client` on route `r`: same method and headers but the
/// hop-by-hop ones, those named in Connection, `X-API-Key`, `Authorization` when it carried the
/// key and `Expect` (the client was already told to continue); `Host` is the upstream's, the
/// X-Forwarded-* and X-Request-Id / X-DataHub-Key-Id headers are the gateway's own (a client's
/// values are replaced, X-Forwarded-For is appended to). HTTP/1.1, keep-alive, with a
/// Content-Length for the buffered body. The body is moved out of `client`; its headers stay.
request build_upstream_request(request& client, const route& r, std::string_view path,
                               std::string_view query, const forward_context& context);

/// Removes from an upstream answer, in place, the hop-by-hop headers and those its Connection
/// header names.
void filter_response_headers(response& res);

/// Sets `RateLimit-Policy`, `RateLimit` (for `tightest`) and the X-RateLimit-* headers for the
/// same window.
void set_rate_limit_headers(response& res, const actors::window_state& minute,
                            const actors::window_state& hour, const actors::window_state& tightest);

/// `"minute";q=100;w=60, "hour";q=5000;w=3600`
std::string rate_limit_policy_value(const actors::window_state& minute,
                                    const actors::window_state& hour);

/// `"minute";r=57;t=23`
std::string rate_limit_value(const actors::window_state& window);

}  // namespace datahub::http
