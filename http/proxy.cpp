// The data-plane handler. A request walks SPEC 3.2 steps 2 to 7 in order: route, method,
// credentials (a malformed secret is refused here, without a lookup), then the key registry's
// admission (key, scopes and rate limits in one step, on an actor thread), then back on the
// session's thread for the upstream call. Every answer to a request of a known key is counted
// in usage; every admitted request's answer carries the rate-limit headers.
#include "http/proxy.hpp"

#include <algorithm>
#include <chrono>

#include <boost/asio/post.hpp>

#include "actors/key_registry.hpp"
#include "actors/usage_recorder.hpp"
#include "config/settings.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/secrets.hpp"
#include "http/forwarding.hpp"
#include "http/request_rules.hpp"
#include "http/upstream_client.hpp"

namespace datahub::http {

namespace {

/// The gateway's error answer, as exchange::fail builds it, returning the body size for usage.
size_t respond_error(exchange& ex, const api_error& error,
                     const std::function<void(response&)>& decorate = {}) {
  response res{status_of(error.code), ex.req.version()};
  res.set(bh::field::content_type, "application/json");
  res.body() = error_body(error, ex.request_id);
  const auto size = res.body().size();
  if (decorate)
    decorate(res);
  ex.respond(std::move(res));
  return size;
}

std::string allow_value(const route& r) {
  std::string out;
  for (const auto& m : r.methods) {
    if (!out.empty())
      out += ", ";
    out += m;
  }
  return out;
}

/// At most one upstream-failure warning per second per I/O thread: a dead upstream under load
/// would otherwise write a line per request.
bool warn_allowed(uint64_t& suppressed) {
  thread_local auto last = std::chrono::steady_clock::time_point{};
  thread_local uint64_t skipped = 0;
  const auto now = std::chrono::steady_clock::now();
  if (now - last < std::chrono::seconds{1}) {
    ++skipped;
    return false;
  }
  last = now;
  suppressed = skipped;
  skipped = 0;
  return true;
}

const char* status_text(api_errc code) {
  switch (code) {
    case api_errc::upstream_timeout:
      return "504";
    default:
      return "502";
  }
}

}  // namespace

struct proxy::impl {
  impl(const config::settings& s, route_holder& r, actors::key_registry& k,
       actors::usage_recorder& u, core::metrics& m)
      : settings(s), routes(r), keys(k), usage(u), metrics(m) {}

  /// What a request carries from admission to its answer.
  struct admitted {
    std::shared_ptr<exchange> ex;
    std::shared_ptr<const route_table> table;  ///< keeps `route` alive across a reload
    const route* matched = nullptr;
    bool key_in_authorization = false;
    actors::admission verdict;
    uint64_t bytes_in = 0;
  };

  void handle(std::shared_ptr<exchange> ex) {
    auto table = routes.current();
    const route* r = table->match(ex->path);
    if (r == nullptr) {
      ex->path_label = "unmatched";
      respond_error(*ex, {api_errc::route_not_found, "No route matches this path"});
      return;
    }
    ex->path_label = r->name;

    if (!r->allows(ex->req.method_string())) {
      respond_error(*ex, {api_errc::method_not_allowed, "This route does not allow the method"},
                    [r](response& res) { res.set(bh::field::allow, allow_value(*r)); });
      return;
    }

    auto creds = extract_credentials(ex->req);
    switch (creds.what) {
      case credentials::kind::none:
        respond_error(*ex, {api_errc::missing_api_key,
                            "An API key is required in X-API-Key or Authorization: Bearer"});
        return;
      case credentials::kind::conflict:
      case credentials::kind::invalid:
        respond_error(*ex, {api_errc::invalid_api_key, "The API key is invalid"});
        return;
      case credentials::kind::secret:
        break;
    }
    // A typo or a truncated key fails the checksum: no lookup, no load on the database.
    if (!core::check_secret_format(creds.secret)) {
      respond_error(*ex, {api_errc::invalid_api_key, "The API key is invalid"});
      return;
    }

    auto state = std::make_shared<admitted>();
    state->ex = std::move(ex);
    state->table = std::move(table);
    state->matched = r;
    state->key_in_authorization = creds.from_authorization;
    state->bytes_in = state->ex->req.body().size();
    admit_soon(state->ex->executor,
               actors::admission_request{core::hash_secret(settings.api_key_salt, creds.secret),
                                         r->scopes, true, [this, state](actors::admission verdict) {
                                           state->verdict = std::move(verdict);
                                           auto executor = state->ex->executor;
                                           boost::asio::post(
                                               executor, [this, state] { on_admission(state); });
                                         }});
  }

  // Admission requests read in one turn of this thread's event loop go to the actors together:
  // the first one posts a flush behind the handlers already queued, and the flush hands the
  // whole batch over in one message. On a busy connection set that is one hand-over between
  // the I/O thread and the actor threads per turn instead of one per request.
  void admit_soon(const boost::asio::any_io_executor& executor, actors::admission_request request) {
    // Per I/O thread; a process runs one proxy, so the batch always belongs to `keys`.
    thread_local std::vector<actors::admission_request> pending;
    const bool first = pending.empty();
    pending.push_back(std::move(request));
    if (!first)
      return;
    boost::asio::post(executor, [this] { keys.admit_all(std::exchange(pending, {})); });
  }

  // On the session's thread.
  void on_admission(const std::shared_ptr<admitted>& state) {
    auto& ex = *state->ex;
    const auto& verdict = state->verdict;
    if (verdict.key)
      ex.key_id = verdict.key->id;

    switch (verdict.result) {
      case actors::admission::verdict::invalid_key:
        respond_error(ex, {api_errc::invalid_api_key, "The API key is invalid"});
        return;
      case actors::admission::verdict::unavailable:
        respond_error(ex, {api_errc::service_unavailable,
                           "The API key cannot be checked right now; retry later"});
        return;
      case actors::admission::verdict::insufficient_scope: {
        const auto size = respond_error(
            ex, {api_errc::insufficient_scope, "The API key lacks a scope this route requires"});
        record(state, 403, false, size);
        return;
      }
      case actors::admission::verdict::rate_limited: {
        const auto retry_after = std::max<int64_t>(1, verdict.retry_after_seconds);
        std::string message = "Rate limit exceeded for the ";
        message += verdict.limited_by;
        message += " window; retry after ";
        message += std::to_string(retry_after);
        message += " s";
        const auto size = respond_error(
            ex, {api_errc::rate_limit_exceeded, std::move(message)}, [&](response& res) {
              decorate(res, verdict);
              res.set(bh::field::retry_after, std::to_string(retry_after));
            });
        record(state, 429, true, size);
        return;
      }
      case actors::admission::verdict::admitted:
        break;
    }
    if (!verdict.key) {
      // The registry's contract puts a key on every admission; without one there is nothing
      // to forward as.
      respond_error(ex, {api_errc::service_unavailable, "The API key cannot be checked right now"});
      return;
    }
    forward(state);
  }

  void forward(const std::shared_ptr<admitted>& state) {
    auto& ex = *state->ex;
    const auto& r = *state->matched;
    forward_context context;
    context.request_id = ex.request_id;
    context.remote_ip = ex.remote_ip;
    context.key_id = ex.key_id;
    context.key_in_authorization = state->key_in_authorization;
    auto upstream_req = build_upstream_request(ex.req, r, ex.path, ex.query, context);

    upstream_limits limits;
    limits.timeout = r.timeout;
    limits.max_body_bytes = settings.max_body_bytes;
    send_upstream(ex.executor, r.upstream, std::move(upstream_req), limits,
                  [this, state](upstream_result result) { on_upstream(state, std::move(result)); });
  }

  void on_upstream(const std::shared_ptr<admitted>& state, upstream_result result) {
    auto& ex = *state->ex;
    if (result.result == upstream_result::outcome::ok) {
      auto& res = result.res;
      filter_response_headers(res);
      decorate(res, state->verdict);
      res.version(ex.req.version());
      const auto status = res.result_int();
      const auto size = res.body().size();
      ex.respond(std::move(res));
      record(state, status, false, size);
      return;
    }

    const api_error error =
        result.result == upstream_result::outcome::timeout
            ? api_error{api_errc::upstream_timeout, "The upstream did not answer in time"}
            : api_error{api_errc::upstream_unavailable, "The upstream is unavailable"};
    const auto& r = *state->matched;
    metrics.upstream_errors_total.Add({{"route", r.name}, {"status", status_text(error.code)}})
        .Increment();
    uint64_t suppressed = 0;
    if (warn_allowed(suppressed))
      core::log_warn("Upstream request failed",
                     {{"requestId", ex.request_id},
                      {"route", r.name},
                      {"upstream", r.upstream_url},
                      {"error", result.detail},
                      {"suppressedWarnings", static_cast<int64_t>(suppressed)}});
    const auto size =
        respond_error(ex, error, [&](response& res) { decorate(res, state->verdict); });
    record(state, static_cast<unsigned>(status_of(error.code)), false, size);
  }

  static void decorate(response& res, const actors::admission& verdict) {
    if (verdict.limits_checked)
      set_rate_limit_headers(res, verdict.minute, verdict.hour, verdict.tightest());
  }

  void record(const std::shared_ptr<admitted>& state, unsigned status, bool rate_limited,
              uint64_t bytes_out) {
    if (state->ex->key_id.empty())
      return;
    usage.record(state->ex->key_id, status, rate_limited, state->bytes_in, bytes_out);
  }

  const config::settings& settings;
  route_holder& routes;
  actors::key_registry& keys;
  actors::usage_recorder& usage;
  core::metrics& metrics;
};

proxy::proxy(const config::settings& settings, route_holder& routes, actors::key_registry& keys,
             actors::usage_recorder& usage, core::metrics& metrics)
    : impl_(std::make_unique<impl>(settings, routes, keys, usage, metrics)) {}

proxy::~proxy() = default;

void proxy::handle(std::shared_ptr<exchange> ex) {
  impl_->handle(std::move(ex));
}

}  // namespace datahub::http
