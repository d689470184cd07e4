// The gateway's own error answers (SPEC 3.2): one code per cause, one table from code to HTTP
// status, and the JSON body `{"error": {"code", "message", "request_id"[, "param"]}}`.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <boost/beast/http/status.hpp>

namespace datahub::http {

enum class api_errc {
  invalid_request,         ///< 400: malformed request, path or body
  validation_error,        ///< 400: a field has a wrong value; `param` names it
  missing_api_key,         ///< 401: no key in X-API-Key or Authorization
  invalid_api_key,         ///< 401: unknown, malformed, revoked or expired key
  insufficient_scope,      ///< 403: the key lacks a required scope
  not_found,               ///< 404: unknown id
  route_not_found,         ///< 404: no route matches the path
  method_not_allowed,      ///< 405
  payload_too_large,       ///< 413
  unsupported_media_type,  ///< 415
  rate_limit_exceeded,     ///< 429
  headers_too_large,       ///< 431
  internal_error,          ///< 500
  upstream_unavailable,    ///< 502: upstream refused, reset or answered malformed
  service_unavailable,     ///< 503: a dependency is down or the gateway is shutting down
  upstream_timeout,        ///< 504
};

/// The `code` string of the JSON body.
std::string_view to_string(api_errc code);

/// The HTTP status for each code.
boost::beast::http::status status_of(api_errc code);

struct api_error {
  api_error(api_errc c, std::string msg, std::optional<std::string> field = std::nullopt)
      : code(c), message(std::move(msg)), param(std::move(field)) {}

  api_errc code;
  std::string message;               ///< for the client; never contains a secret
  std::optional<std::string> param;  ///< the offending field, for validation errors
};

/// The JSON body for `error`.
std::string error_body(const api_error& error, std::string_view request_id);

}  // namespace datahub::http
