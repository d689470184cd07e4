// The admin API's routing, admin-key authentication and key endpoints. A request goes: path
// template (404), method (405), key (401/403/503), Content-Type and body (415/400), handler.
// Registry and store callbacks run on actor and database threads and answer from there:
// `exchange::respond` is thread-safe.
#include "http/admin_api.hpp"

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/post.hpp>

#include "actors/key_registry.hpp"
#include "config/settings.hpp"
#include "core/api_key.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"
#include "core/secrets.hpp"
#include "http/admin_validation.hpp"
#include "http/request_rules.hpp"
#include "persistence/key_store.hpp"

namespace datahub::http {

namespace {

using json = nlohmann::json;
using persistence::db_errc;
using persistence::db_error;
using persistence::db_result;

constexpr std::string_view keys_path = "/api/v1/keys";
constexpr std::string_view webhooks_path = "/api/v1/webhooks";

/// True for `base` itself and any path below it (`base/...`), not for `base` + other characters.
bool is_at_or_below(std::string_view path, std::string_view base) {
  return path.substr(0, base.size()) == base &&
         (path.size() == base.size() || path[base.size()] == '/');
}

enum class endpoint { key_collection, single_key, unknown };

struct route_match {
  endpoint which = endpoint::unknown;
  std::string_view label = "/api/v1/unknown";
  std::string id;  ///< the `:id` segment, as received
};

route_match match_path(std::string_view path) {
  if (path == keys_path)
    return {endpoint::key_collection, "/api/v1/keys", {}};
  if (is_at_or_below(path, keys_path)) {
    const auto rest = path.substr(keys_path.size() + 1);
    if (!rest.empty() && rest.find('/') == std::string_view::npos)
      return {endpoint::single_key, "/api/v1/keys/:id", std::string{rest}};
  }
  return {};
}

/// The `Allow` header of each endpoint.
std::string_view allowed_methods(endpoint which) {
  return which == endpoint::key_collection ? "GET, POST" : "GET, PATCH, DELETE";
}

bool is_allowed(endpoint which, bh::verb method) {
  if (which == endpoint::key_collection)
    return method == bh::verb::get || method == bh::verb::post;
  return method == bh::verb::get || method == bh::verb::patch || method == bh::verb::delete_;
}

/// Serialises an answer; invalid UTF-8 (which validation never lets in) would be replaced
/// rather than throw.
std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

const api_error key_not_found{api_errc::not_found, "No such API key", std::nullopt};

/// Runs `step`, answering 500 if it throws: the callbacks run on actor and database threads,
/// where an escaping exception would take the thread down instead of failing one request.
template <class F>
void guarded(const std::shared_ptr<exchange>& ex, F&& step) {
  try {
    step();
  } catch (const std::exception& e) {
    core::log_error("Admin request failed",
                    {{"requestId", ex->request_id}, {"path", ex->path_label}, {"error", e.what()}});
    ex->fail(api_error{api_errc::internal_error, "Internal error", std::nullopt});
  }
}

/// The key endpoints. Shared with the callbacks in flight, so it outlives the admin_api that
/// made it until the last one has answered.
class key_endpoints : public std::enable_shared_from_this<key_endpoints> {
 public:
  key_endpoints(const config::settings& settings, persistence::key_store& keys,
                actors::key_registry& registry)
      : settings_(settings), keys_(keys), registry_(registry) {}

  /// Checks the request's key holds the `admin` scope, then runs `next` on the exchange's
  /// executor (handlers parse bodies: that work stays off the actor threads).
  void authenticate(const std::shared_ptr<exchange>& ex,
                    std::function<void(const std::shared_ptr<exchange>&)> next) {
    const auto creds = extract_credentials(ex->req);
    switch (creds.what) {
      case credentials::kind::none:
        ex->fail(api_error{api_errc::missing_api_key,
                           "An API key is required: send it in X-API-Key or Authorization: Bearer",
                           std::nullopt});
        return;
      case credentials::kind::conflict:
      case credentials::kind::invalid:
        ex->fail(invalid_key());
        return;
      case credentials::kind::secret:
        break;
    }
    // A malformed secret cannot belong to any key: refused without asking the registry.
    if (!core::check_secret_format(creds.secret)) {
      ex->fail(invalid_key());
      return;
    }
    registry_.admit(
        core::hash_secret(settings_.api_key_salt, creds.secret), {"admin"}, false,
        [ex, next = std::move(next)](actors::admission admission) {
          using verdict = actors::admission::verdict;
          if (admission.key)
            ex->key_id = admission.key->id;
          switch (admission.result) {
            case verdict::admitted:
              boost::asio::post(ex->executor, [ex, next] { guarded(ex, [&] { next(ex); }); });
              return;
            case verdict::invalid_key:
              ex->fail(invalid_key());
              return;
            case verdict::insufficient_scope:
              ex->fail(api_error{api_errc::insufficient_scope,
                                 "This endpoint needs a key with the admin scope", std::nullopt});
              return;
            case verdict::rate_limited: {
              // Admission without counting checks no limits; answered properly all the same.
              const auto retry =
                  std::to_string(std::max<int64_t>(1, admission.retry_after_seconds));
              ex->fail(
                  api_error{api_errc::rate_limit_exceeded, "Rate limit exceeded", std::nullopt},
                  [retry](response& res) { res.set(bh::field::retry_after, retry); });
              return;
            }
            case verdict::unavailable:
              ex->fail(api_error{api_errc::service_unavailable,
                                 "API keys cannot be checked right now; try again later",
                                 std::nullopt});
              return;
          }
          ex->fail(invalid_key());
        });
  }

  void list(const std::shared_ptr<exchange>& ex) {
    auto query = parse_list_query(ex->query);
    if (!query) {
      ex->fail(query.error());
      return;
    }
    keys_.list(std::move(*query),
               [self = shared_from_this(), ex](db_result<persistence::key_page> r) {
                 guarded(ex, [&] {
                   if (!r) {
                     self->fail_db(ex, r.error(), "list");
                     return;
                   }
                   const auto at = core::now();
                   json data = json::array();
                   for (const auto& key : r->data)
                     data.push_back(core::to_json(key, self->settings_.default_limits, at));
                   const json page = {
                       {"object", "list"}, {"data", std::move(data)}, {"has_more", r->has_more}};
                   ex->reply_json(bh::status::ok, dump(page));
                 });
               });
  }

  void create(const std::shared_ptr<exchange>& ex) {
    auto body = parse_json_object(ex->req.body());
    if (!body) {
      ex->fail(body.error());
      return;
    }
    auto request = validate_create(*body, settings_, core::now());
    if (!request) {
      ex->fail(request.error());
      return;
    }

    auto secret = core::generate_secret(request->environment);
    core::api_key key;
    key.id = core::new_id("key");
    key.name = std::move(request->name);
    key.prefix = core::display_prefix(secret);
    key.environment = std::string{core::to_string(request->environment)};
    key.scopes = std::move(request->scopes);
    key.limits = request->limits;
    key.metadata = std::move(request->metadata);
    key.key_hash = core::hash_secret(settings_.api_key_salt, secret);
    key.created_at = key.updated_at = core::now();
    key.expires_at = request->expires_at;

    // The secret lives only in this callback until it is written into the answer.
    keys_.insert(std::move(key), [self = shared_from_this(), ex,
                                  secret = std::move(secret)](db_result<core::api_key> r) {
      guarded(ex, [&] {
        if (!r) {
          self->fail_db(ex, r.error(), "create");
          return;
        }
        self->registry_.key_changed(*r);
        auto answer = core::to_json(*r, self->settings_.default_limits, core::now());
        answer["secret"] = secret;
        ex->reply_json(bh::status::created, dump(answer));
      });
    });
  }

  void get(const std::shared_ptr<exchange>& ex, const std::string& id) {
    // A malformed id gets the same answer as an unknown one, without a query.
    if (!core::is_valid_id("key", id)) {
      ex->fail(key_not_found);
      return;
    }
    keys_.find_by_id(id,
                     [self = shared_from_this(), ex](db_result<std::optional<core::api_key>> r) {
                       guarded(ex, [&] { self->answer_key(ex, r, "get", false); });
                     });
  }

  void patch(const std::shared_ptr<exchange>& ex, const std::string& id) {
    auto body = parse_json_object(ex->req.body());
    if (!body) {
      ex->fail(body.error());
      return;
    }
    auto request = validate_patch(*body, core::now());
    if (!request) {
      ex->fail(request.error());
      return;
    }
    if (!core::is_valid_id("key", id)) {
      ex->fail(key_not_found);
      return;
    }
    if (!request->empty() && !request->needs_current_limits()) {
      apply_patch(ex, id, *request, std::nullopt);
      return;
    }

    // An empty patch answers the key as it is; a partial rate_limit is merged with the key's
    // current limits. A concurrent PATCH of the other limit between this read and the update is
    // overwritten with the value read here.
    keys_.find_by_id(id, [self = shared_from_this(), ex, id, request = std::move(*request)](
                             db_result<std::optional<core::api_key>> r) {
      guarded(ex, [&] {
        if (!r || !*r || request.empty()) {
          self->answer_key(ex, r, "get", false);
          return;
        }
        self->apply_patch(ex, id, request, (*r)->limits);
      });
    });
  }

  void revoke(const std::shared_ptr<exchange>& ex, const std::string& id) {
    if (!core::is_valid_id("key", id)) {
      ex->fail(key_not_found);
      return;
    }
    keys_.revoke(id, [self = shared_from_this(), ex](db_result<std::optional<core::api_key>> r) {
      guarded(ex, [&] { self->answer_key(ex, r, "revoke", true); });
    });
  }

 private:
  static api_error invalid_key() {
    return api_error{api_errc::invalid_api_key, "The API key is invalid, revoked or expired",
                     std::nullopt};
  }

  void apply_patch(const std::shared_ptr<exchange>& ex, const std::string& id,
                   const patch_key_request& request,
                   const std::optional<core::rate_limit>& current) {
    auto patch = resolve_patch(request, current, settings_.default_limits);
    if (!patch) {
      ex->fail(patch.error());
      return;
    }
    keys_.update(id, std::move(*patch),
                 [self = shared_from_this(), ex](db_result<std::optional<core::api_key>> r) {
                   guarded(ex, [&] { self->answer_key(ex, r, "update", true); });
                 });
  }

  /// Answers 200 with the key, 404 when there is none, or the database error. `changed` tells
  /// the registry, so this instance's data plane sees the change at once.
  void answer_key(const std::shared_ptr<exchange>& ex, db_result<std::optional<core::api_key>>& r,
                  std::string_view operation, bool changed) {
    if (!r) {
      fail_db(ex, r.error(), operation);
      return;
    }
    if (!*r) {
      ex->fail(key_not_found);
      return;
    }
    if (changed)
      registry_.key_changed(**r);
    ex->reply_json(bh::status::ok, dump(core::to_json(**r, settings_.default_limits, core::now())));
  }

  /// An outage (PostgreSQL down, queue full, slow) is a 503 the client may retry; anything else
  /// is a fault on our side, logged with the store's detail, which never holds a secret.
  void fail_db(const std::shared_ptr<exchange>& ex, const db_error& error,
               std::string_view operation) {
    switch (error.code) {
      case db_errc::unavailable:
      case db_errc::overloaded:
      case db_errc::timeout:
        core::log_warn("Admin request refused: database unavailable",
                       {{"requestId", ex->request_id},
                        {"operation", operation},
                        {"error", persistence::to_string(error.code)}});
        ex->fail(api_error{api_errc::service_unavailable,
                           "The database is unavailable; try again later", std::nullopt});
        return;
      case db_errc::conflict:
      case db_errc::failed:
        break;
    }
    core::log_error("Admin request failed in the database",
                    {{"requestId", ex->request_id},
                     {"operation", operation},
                     {"error", persistence::to_string(error.code)},
                     {"detail", error.detail}});
    ex->fail(api_error{api_errc::internal_error, "Internal error", std::nullopt});
  }

  const config::settings& settings_;
  persistence::key_store& keys_;
  actors::key_registry& registry_;
};

}  // namespace

struct admin_api::impl {
  std::shared_ptr<key_endpoints> keys;
};

// Admin requests are counted by the session under `path_label`; nothing here records more.
admin_api::admin_api(const config::settings& settings, persistence::key_store& keys,
                     actors::key_registry& registry, core::metrics& /*metrics*/)
    : impl_(
          std::make_unique<impl>(impl{std::make_shared<key_endpoints>(settings, keys, registry)})) {
}

admin_api::~admin_api() = default;

bool admin_api::owns(std::string_view path) {
  return is_at_or_below(path, keys_path) || is_at_or_below(path, webhooks_path);
}

void admin_api::handle(std::shared_ptr<exchange> ex) {
  auto route = match_path(ex->path);
  ex->path_label = std::string{route.label};
  if (route.which == endpoint::unknown) {
    ex->fail(api_error{api_errc::route_not_found, "No admin endpoint at this path", std::nullopt});
    return;
  }
  if (!is_allowed(route.which, ex->req.method())) {
    const auto allow = allowed_methods(route.which);
    ex->fail(api_error{api_errc::method_not_allowed,
                       "Method not allowed here; allowed: " + std::string{allow}, std::nullopt},
             [allow](response& res) { res.set(bh::field::allow, allow); });
    return;
  }

  impl_->keys->authenticate(
      ex, [keys = impl_->keys, route = std::move(route)](const std::shared_ptr<exchange>& e) {
        // SPEC 4.1: a body of any other type is refused before it is read, whatever the method.
        if (!e->req.body().empty() && !is_json_content_type(e->req[bh::field::content_type])) {
          e->fail(api_error{api_errc::unsupported_media_type,
                            "Content-Type must be application/json", std::nullopt});
          return;
        }
        const auto method = e->req.method();
        if (route.which == endpoint::key_collection) {
          if (method == bh::verb::get)
            keys->list(e);
          else
            keys->create(e);
          return;
        }
        if (method == bh::verb::get)
          keys->get(e, route.id);
        else if (method == bh::verb::patch)
          keys->patch(e, route.id);
        else
          keys->revoke(e, route.id);
      });
}

}  // namespace datahub::http
