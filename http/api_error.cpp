// Error codes, statuses and bodies.
#include "http/api_error.hpp"

#include "core/log.hpp"

namespace datahub::http {

namespace bh = boost::beast::http;

std::string_view to_string(api_errc code) {
  switch (code) {
    case api_errc::invalid_request:
      return "invalid_request";
    case api_errc::validation_error:
      return "validation_error";
    case api_errc::missing_api_key:
      return "missing_api_key";
    case api_errc::invalid_api_key:
      return "invalid_api_key";
    case api_errc::insufficient_scope:
      return "insufficient_scope";
    case api_errc::not_found:
      return "not_found";
    case api_errc::route_not_found:
      return "route_not_found";
    case api_errc::method_not_allowed:
      return "method_not_allowed";
    case api_errc::payload_too_large:
      return "payload_too_large";
    case api_errc::unsupported_media_type:
      return "unsupported_media_type";
    case api_errc::rate_limit_exceeded:
      return "rate_limit_exceeded";
    case api_errc::headers_too_large:
      return "headers_too_large";
    case api_errc::internal_error:
      return "internal_error";
    case api_errc::upstream_unavailable:
      return "upstream_unavailable";
    case api_errc::service_unavailable:
      return "service_unavailable";
    case api_errc::upstream_timeout:
      return "upstream_timeout";
  }
  return "internal_error";
}

bh::status status_of(api_errc code) {
  switch (code) {
    case api_errc::invalid_request:
    case api_errc::validation_error:
      return bh::status::bad_request;
    case api_errc::missing_api_key:
    case api_errc::invalid_api_key:
      return bh::status::unauthorized;
    case api_errc::insufficient_scope:
      return bh::status::forbidden;
    case api_errc::not_found:
    case api_errc::route_not_found:
      return bh::status::not_found;
    case api_errc::method_not_allowed:
      return bh::status::method_not_allowed;
    case api_errc::payload_too_large:
      return bh::status::payload_too_large;
    case api_errc::unsupported_media_type:
      return bh::status::unsupported_media_type;
    case api_errc::rate_limit_exceeded:
      return bh::status::too_many_requests;
    case api_errc::headers_too_large:
      return bh::status::request_header_fields_too_large;
    case api_errc::internal_error:
      return bh::status::internal_server_error;
    case api_errc::upstream_unavailable:
      return bh::status::bad_gateway;
    case api_errc::service_unavailable:
      return bh::status::service_unavailable;
    case api_errc::upstream_timeout:
      return bh::status::gateway_timeout;
  }
  return bh::status::internal_server_error;
}

std::string error_body(const api_error& error, std::string_view request_id) {
  std::string out = "{\"error\":{\"code\":\"";
  out += to_string(error.code);
  out += "\",\"message\":\"";
  core::append_json_escaped(out, error.message);
  out += "\"";
  if (error.param) {
    out += ",\"param\":\"";
    core::append_json_escaped(out, *error.param);
    out += "\"";
  }
  out += ",\"request_id\":\"";
  core::append_json_escaped(out, request_id);
  out += "\"}}";
  return out;
}

}  // namespace datahub::http
