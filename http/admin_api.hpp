// The admin REST API under /api/v1/ (SPEC 4): path templates, methods, admin authentication,
// JSON validation, and the key endpoints. Every change is committed to PostgreSQL before the
// answer is sent.
#pragma once

#include <memory>
#include <string_view>

#include "http/exchange.hpp"

namespace datahub::config {
struct settings;
}
namespace datahub::core {
class metrics;
}
namespace datahub::persistence {
class key_store;
}
namespace datahub::actors {
class key_registry;
}

namespace datahub::http {

class admin_api {
 public:
  admin_api(const config::settings& settings, persistence::key_store& keys,
            actors::key_registry& registry, core::metrics& metrics);
  ~admin_api();

  /// True for paths this API owns (`/api/v1/keys...`, `/api/v1/webhooks...`); routes may not
  /// shadow them.
  static bool owns(std::string_view path);

  /// Handles a request whose path `owns`. Sets `ex->path_label` to the path's template
  /// (`/api/v1/keys/:id`), answers 404/405/401/403 before any handler runs.
  void handle(std::shared_ptr<exchange> ex);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace datahub::http
