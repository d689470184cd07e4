// Health and metrics endpoints.
#include "http/health.hpp"

#include <mutex>

#include <nlohmann/json.hpp>

#include "core/metrics.hpp"
#include "persistence/db_pool.hpp"

namespace datahub::http {

namespace {

bool is_get_or_head(const exchange& ex) {
  return ex.req.method() == bh::verb::get || ex.req.method() == bh::verb::head;
}

}  // namespace

health::health(std::shared_ptr<persistence::db_pool> db, liveness_probe actors_alive,
               core::metrics& metrics, bool redis_configured)
    : db_(std::move(db)),
      actors_alive_(std::move(actors_alive)),
      metrics_(metrics),
      redis_configured_(redis_configured) {}

bool health::owns(std::string_view path) {
  return path == "/health" || path == "/health/live" || path == "/health/ready" ||
         path == "/metrics";
}

void health::handle(std::shared_ptr<exchange> ex) {
  ex->path_label = ex->path;
  if (!is_get_or_head(*ex)) {
    ex->fail(api_error{api_errc::method_not_allowed, "Only GET is allowed on this path"},
             [](response& res) { res.set(bh::field::allow, "GET, HEAD"); });
    return;
  }
  if (ex->path == "/metrics") {
    response res{bh::status::ok, ex->req.version()};
    res.set(bh::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = metrics_.serialize();
    ex->respond(std::move(res));
    return;
  }
  if (ex->path == "/health") {
    ex->reply_json(bh::status::ok, R"({"status":"ok"})");
    return;
  }
  if (ex->path == "/health/live") {
    actors_alive_([ex](bool alive) {
      nlohmann::json body{{"status", alive ? "ok" : "error"},
                          {"checks", {{"http", "ok"}, {"actors", alive ? "ok" : "error"}}}};
      ex->reply_json(alive ? bh::status::ok : bh::status::service_unavailable, body.dump());
    });
    return;
  }
  ready(std::move(ex));
}

void health::ready(std::shared_ptr<exchange> ex) {
  // Both checks run at once; the answer goes out when both are in.
  struct state {
    std::mutex mutex;
    int pending = 2;
    bool database = false;
    std::string database_error;
    bool schema = false;
  };
  auto st = std::make_shared<state>();
  const bool shutting_down = shutting_down_.load();
  const char* redis = redis_configured_ ? "skipped" : "not_configured";
  auto finish = [ex, st, shutting_down, redis] {
    const bool ok = st->database && st->schema && !shutting_down;
    nlohmann::json checks{
        {"database", st->database ? "ok" : "error"},
        {"migrations", st->schema ? "ok" : (st->database ? "pending" : "unknown")},
        {"redis", "not_configured"}};
    nlohmann::json body{{"status", ok ? "ok" : (shutting_down ? "shutting_down" : "error")},
                        {"checks", checks}};
    ex->reply_json(ok ? bh::status::ok : bh::status::service_unavailable, body.dump());
  };
  db_->ping([st, finish](persistence::db_result<persistence::done_t> r) {
    std::lock_guard<std::mutex> lock{st->mutex};
    st->database = r.ok();
    if (--st->pending == 0)
      finish();
  });
  db_->schema_current([st, finish](persistence::db_result<bool> r) {
    std::lock_guard<std::mutex> lock{st->mutex};
    st->schema = r.ok() && r.value();
    if (--st->pending == 0)
      finish();
  });
}

}  // namespace datahub::http
