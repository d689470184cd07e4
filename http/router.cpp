// Dispatch by path owner.
#include "http/router.hpp"

#include "http/admin_api.hpp"
#include "http/health.hpp"
#include "http/proxy.hpp"
#include "http/request_rules.hpp"

namespace datahub::http {

void router::operator()(const std::shared_ptr<exchange>& ex) const {
  if (auto problem = check_target(ex->req.target(), ex->path, ex->query)) {
    ex->path_label = "invalid";
    ex->fail(api_error{api_errc::invalid_request, *problem});
    return;
  }
  if (health::owns(ex->path)) {
    health_.handle(ex);
    return;
  }
  if (admin_api::owns(ex->path)) {
    admin_.handle(ex);
    return;
  }
  proxy_.handle(ex);
}

}  // namespace datahub::http
