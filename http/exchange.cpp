// Answer helpers shared by every handler.
#include "http/exchange.hpp"

namespace datahub::http {

void exchange::fail(const api_error& error, const std::function<void(response&)>& decorate) {
  response res{status_of(error.code), req.version()};
  res.set(bh::field::content_type, "application/json");
  res.body() = error_body(error, request_id);
  if (decorate)
    decorate(res);
  respond(std::move(res));
}

void exchange::reply_json(bh::status status, std::string body) {
  response res{status, req.version()};
  res.set(bh::field::content_type, "application/json");
  res.body() = std::move(body);
  respond(std::move(res));
}

}  // namespace datahub::http
