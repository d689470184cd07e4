// The first step of every request: the request rules (SPEC 3.2 step 1), then the owner of the
// path: health and metrics, the admin API, or the data plane.
#pragma once

#include "http/exchange.hpp"

namespace datahub::http {

class admin_api;
class health;
class proxy;

class router {
 public:
  router(health& health_endpoints, admin_api& admin, proxy& data_plane)
      : health_(health_endpoints), admin_(admin), proxy_(data_plane) {}

  void operator()(const std::shared_ptr<exchange>& ex) const;

 private:
  health& health_;
  admin_api& admin_;
  proxy& proxy_;
};

}  // namespace datahub::http
