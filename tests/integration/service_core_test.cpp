// End-to-end tests of the service core (issue: keys admin API, health, logs, lifecycle) against
// the real binary, a real PostgreSQL and real HTTP over loopback.
#include <csignal>
#include <cstdio>
#include <future>
#include <regex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "core/secrets.hpp"
#include "tests/support/harness.hpp"
#include "tests/support/tcp_forwarder.hpp"

namespace datahub::testing {
namespace {

using json = nlohmann::json;
using headers = std::map<std::string, std::string>;

class ServiceCore : public ::testing::Test {
 protected:
  void start(std::map<std::string, std::string> env = {}) {
    gw_ = std::make_unique<gateway_process>(db_.url(), std::move(env));
    ASSERT_TRUE(gw_->wait_ready()) << gw_->output();
  }

  headers admin() const {
    return {{"Authorization", "Bearer " + gw_->admin_key()}, {"Content-Type", "application/json"}};
  }

  http_response call(const std::string& method, const std::string& target,
                     const std::string& body = {}, headers h = {}) {
    auto all = admin();
    for (auto& [k, v] : h)
      all[k] = v;
    return http_request(gw_->port(), method, target, all, body);
  }

  json create_key(const json& body) {
    auto r = call("POST", "/api/v1/keys", body.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json();
  }

  static void expect_error(const http_response& r, int status, const std::string& code,
                           const std::string& param = {}) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.header("content-type").rfind("application/json", 0), 0u) << r.body;
    auto j = r.json();
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_EQ(j["error"]["code"], code) << r.body;
    EXPECT_TRUE(j["error"]["message"].is_string()) << r.body;
    EXPECT_EQ(j["error"]["request_id"].get<std::string>().rfind("req_", 0), 0u) << r.body;
    if (!param.empty()) {
      EXPECT_EQ(j["error"]["param"], param) << r.body;
    }
  }

  scratch_database db_;
  std::unique_ptr<gateway_process> gw_;
};

TEST_F(ServiceCore, HealthEndpointsAnswerJson) {
  start();
  auto h = http_request(gw_->port(), "GET", "/health");
  EXPECT_EQ(h.status, 200);
  auto live = http_request(gw_->port(), "GET", "/health/live");
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(live.json()["checks"]["actors"], "ok");
  auto ready = http_request(gw_->port(), "GET", "/health/ready");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_EQ(ready.json()["checks"]["database"], "ok");
  EXPECT_EQ(ready.json()["checks"]["migrations"], "ok");
  EXPECT_FALSE(h.header("x-request-id").empty());
}

TEST_F(ServiceCore, CreatesGetsPatchesAndRevokesKeys) {
  start();
  auto created = create_key({{"name", "reporting"},
                             {"scopes", {"data:read"}},
                             {"rate_limit", {{"per_minute", 10}, {"per_hour", 100}}},
                             {"metadata", {{"team", "bi"}}}});
  const std::string secret = created["secret"];
  EXPECT_TRUE(core::check_secret_format(secret)) << secret;
  EXPECT_EQ(created["object"], "api_key");
  EXPECT_EQ(created["status"], "active");
  EXPECT_EQ(created["environment"], "live");
  EXPECT_EQ(secret.rfind(created["prefix"].get<std::string>(), 0), 0u);
  EXPECT_EQ(created["rate_limit"]["per_minute"], 10);
  const std::string id = created["id"];
  EXPECT_EQ(id.rfind("key_", 0), 0u);

  auto got = call("GET", "/api/v1/keys/" + id);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_FALSE(got.json().contains("secret")) << "the secret is shown only once";
  EXPECT_EQ(got.json()["metadata"]["team"], "bi");

  auto patched = call("PATCH", "/api/v1/keys/" + id,
                      json{{"name", "reporting-2"}, {"rate_limit", {{"per_minute", 20}}}}.dump());
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(patched.json()["name"], "reporting-2");
  EXPECT_EQ(patched.json()["rate_limit"]["per_minute"], 20);
  EXPECT_EQ(patched.json()["rate_limit"]["per_hour"], 100);

  auto revoked = call("DELETE", "/api/v1/keys/" + id);
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  EXPECT_EQ(revoked.json()["status"], "revoked");
  EXPECT_TRUE(revoked.json()["revoked_at"].is_string());
  auto again = call("DELETE", "/api/v1/keys/" + id);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.json()["revoked_at"], revoked.json()["revoked_at"]);

  expect_error(call("GET", "/api/v1/keys/key_01H5X4Y6Z8A9B0C1D2E3F4G5H6"), 404, "not_found");
  expect_error(call("GET", "/api/v1/keys/not-an-id"), 404, "not_found");
  expect_error(call("PATCH", "/api/v1/keys/key_01H5X4Y6Z8A9B0C1D2E3F4G5H6", "{}"), 404,
               "not_found");
}

TEST_F(ServiceCore, ListsKeysInPages) {
  start();
  std::set<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.insert(create_key({{"name", "k" + std::to_string(i)}})["id"].get<std::string>());

  std::set<std::string> seen;
  std::string after;
  int pages = 0;
  while (true) {
    auto r =
        call("GET", "/api/v1/keys?limit=2" + (after.empty() ? "" : "&starting_after=" + after));
    ASSERT_EQ(r.status, 200) << r.body;
    auto j = r.json();
    EXPECT_EQ(j["object"], "list");
    EXPECT_LE(j["data"].size(), 2u);
    for (auto& k : j["data"])
      seen.insert(k["id"].get<std::string>());
    ++pages;
    if (!j["has_more"].get<bool>())
      break;
    after = j["data"].back()["id"];
    ASSERT_LT(pages, 10);
  }
  for (auto& id : ids)
    EXPECT_TRUE(seen.count(id)) << id;
  EXPECT_EQ(seen.size(), 6u) << "5 keys plus the bootstrap admin key";

  call("DELETE", "/api/v1/keys/" + *ids.begin());
  auto revoked = call("GET", "/api/v1/keys?status=revoked").json();
  ASSERT_EQ(revoked["data"].size(), 1u);
  EXPECT_EQ(revoked["data"][0]["id"], *ids.begin());
}

TEST_F(ServiceCore, BadInputGetsClearErrorsAndChangesNothing) {
  start({{"MAX_BODY_BYTES", "8192"}, {"MAX_HEADER_BYTES", "2048"}});
  const auto before = db_.exec("SELECT count(*) FROM api_keys");

  expect_error(call("POST", "/api/v1/keys", "{not json"), 400, "invalid_request");
  expect_error(call("POST", "/api/v1/keys", "[1,2]"), 400, "invalid_request");
  expect_error(call("POST", "/api/v1/keys", "\"name\""), 400, "invalid_request");
  expect_error(call("POST", "/api/v1/keys", R"({"name":"x","colour":"red"})"), 400,
               "validation_error", "colour");
  expect_error(call("POST", "/api/v1/keys", "{}"), 400, "validation_error", "name");
  expect_error(call("POST", "/api/v1/keys", R"({"name":""})"), 400, "validation_error", "name");
  expect_error(call("POST", "/api/v1/keys", json{{"name", std::string(201, 'n')}}.dump()), 400,
               "validation_error", "name");
  for (const char* v : {"-1", "0", "1.5", "\"10\"", "9223372036854775808", "1e30"})
    expect_error(call("POST", "/api/v1/keys",
                      std::string{R"({"name":"x","rate_limit":{"per_minute":)"} + v + "}}"),
                 400, "validation_error", "rate_limit.per_minute");
  expect_error(
      call("POST", "/api/v1/keys", R"({"name":"x","rate_limit":{"per_minute":100,"per_hour":10}})"),
      400, "validation_error", "rate_limit.per_hour");
  expect_error(call("POST", "/api/v1/keys", R"({"name":"x","expires_at":"tomorrow"})"), 400,
               "validation_error", "expires_at");
  expect_error(call("POST", "/api/v1/keys", R"({"name":"x","expires_at":"2001-01-01T00:00:00Z"})"),
               400, "validation_error", "expires_at");
  expect_error(call("POST", "/api/v1/keys", R"({"name":"x","metadata":[1]})"), 400,
               "validation_error", "metadata");
  expect_error(call("POST", "/api/v1/keys",
                    json{{"name", "x"}, {"metadata", {{"blob", std::string(4100, 'm')}}}}.dump()),
               400, "validation_error", "metadata");
  expect_error(call("POST", "/api/v1/keys", R"({"name":"x","scopes":["Data Read"]})"), 400,
               "validation_error", "scopes");
  expect_error(call("POST", "/api/v1/keys", "{\"name\":\"\xff\xfe\"}"), 400, "invalid_request");
  expect_error(call("POST", "/api/v1/keys", R"({"name":"x"})", {{"Content-Type", "text/plain"}}),
               415, "unsupported_media_type");
  expect_error(call("GET", "/api/v1/keys?limit=0"), 400, "validation_error", "limit");
  expect_error(call("GET", "/api/v1/keys?limit=abc"), 400, "validation_error", "limit");
  expect_error(call("GET", "/api/v1/keys?starting_after=bogus"), 400, "validation_error",
               "starting_after");
  expect_error(call("PUT", "/api/v1/keys"), 405, "method_not_allowed");

  // Body over the limit: refused from its Content-Length, before the body is read.
  auto big = raw_exchange(
      gw_->port(), "POST /api/v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                       gw_->admin_key() +
                       "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n");
  EXPECT_NE(big.find("HTTP/1.1 413"), std::string::npos) << big;
  EXPECT_NE(big.find("payload_too_large"), std::string::npos) << big;
  auto huge_header = raw_exchange(
      gw_->port(),
      "GET /api/v1/keys HTTP/1.1\r\nHost: x\r\nX-Filler: " + std::string(4096, 'a') + "\r\n\r\n");
  EXPECT_NE(huge_header.find("HTTP/1.1 431"), std::string::npos) << huge_header;

  expect_error(http_request(gw_->port(), "GET", "/api/v1/keys"), 401, "missing_api_key");
  expect_error(http_request(gw_->port(), "GET", "/api/v1/keys", {{"X-API-Key", "dh_live_nope"}}),
               401, "invalid_api_key");
  const auto unknown = core::generate_secret(core::key_environment::live);
  expect_error(http_request(gw_->port(), "GET", "/api/v1/keys", {{"X-API-Key", unknown}}), 401,
               "invalid_api_key");
  auto plain = create_key({{"name", "not-admin"}, {"scopes", {"data:read"}}});
  expect_error(http_request(gw_->port(), "GET", "/api/v1/keys",
                            {{"X-API-Key", plain["secret"].get<std::string>()}}),
               403, "insufficient_scope");

  EXPECT_EQ(db_.exec("SELECT count(*) FROM api_keys"), std::to_string(std::stoi(before) + 1));
}

TEST_F(ServiceCore, DatabaseHoldsNoSecretThatWasHandedOut) {
  start();
  std::vector<std::string> secrets{gw_->admin_key()};
  for (int i = 0; i < 3; ++i)
    secrets.push_back(create_key({{"name", "k"}})["secret"]);
  const std::string cmd = "pg_dump --data-only '" + db_.url() + "' 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string dump;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0)
    dump.append(buf, n);
  ASSERT_EQ(pclose(pipe), 0) << dump;
  ASSERT_NE(dump.find("api_keys"), std::string::npos) << dump;
  for (const auto& s : secrets) {
    EXPECT_EQ(dump.find(s), std::string::npos);
    EXPECT_EQ(dump.find(s.substr(8, 32)), std::string::npos) << "random part of a secret";
  }
}

TEST_F(ServiceCore, SurvivesTerminatedBackends) {
  start({{"DATABASE_POOL_SIZE", "2"}});
  ASSERT_EQ(call("GET", "/api/v1/keys").status, 200);
  db_.exec("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '" +
           db_.name() + "' AND pid <> pg_backend_pid()");
  auto r = call("POST", "/api/v1/keys", json{{"name", "after-terminate"}}.dump());
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(call("GET", "/api/v1/keys").status, 200);
}

TEST_F(ServiceCore, AnswersServiceUnavailableWhileDatabaseIsGoneAndRecovers) {
  const auto url = db_.url();
  const auto at = url.find("@");
  const auto colon = url.find(':', at);
  const auto slash = url.find('/', colon);
  const auto pg_port = static_cast<uint16_t>(std::stoi(url.substr(colon + 1, slash - colon - 1)));
  tcp_forwarder forward{pg_port};
  const auto via = url.substr(0, colon + 1) + std::to_string(forward.port()) + url.substr(slash);
  gw_ = std::make_unique<gateway_process>(via, std::map<std::string, std::string>{});
  ASSERT_TRUE(gw_->wait_ready()) << gw_->output();
  ASSERT_EQ(call("GET", "/api/v1/keys").status, 200);

  forward.cut();
  auto create = call("POST", "/api/v1/keys", json{{"name", "while-down"}}.dump());
  expect_error(create, 503, "service_unavailable");
  EXPECT_EQ(http_request(gw_->port(), "GET", "/health/ready").status, 503);
  EXPECT_EQ(http_request(gw_->port(), "GET", "/health/live").status, 200);

  forward.restore();
  http_response after;
  for (int i = 0; i < 50; ++i) {
    after = call("POST", "/api/v1/keys", json{{"name", "after-restore"}}.dump());
    if (after.status == 201)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(after.status, 201) << after.body;
  EXPECT_EQ(http_request(gw_->port(), "GET", "/health/ready").status, 200);
}

TEST_F(ServiceCore, LogsAreJsonLinesWithoutSecrets) {
  start();
  auto created = create_key({{"name", "logged"}});
  const std::string secret = created["secret"];
  call("GET", "/api/v1/keys");
  call("DELETE", "/api/v1/keys/" + created["id"].get<std::string>());
  http_request(gw_->port(), "GET", "/api/v1/keys", {{"X-API-Key", secret}});
  ASSERT_EQ(gw_->stop(SIGTERM), 0);
  const auto out = gw_->output();
  std::istringstream lines{out};
  std::string line;
  int completed = 0;
  while (std::getline(lines, line)) {
    auto j = json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    for (const char* f : {"level", "time", "service", "version", "environment", "msg"})
      EXPECT_TRUE(j.contains(f)) << f << " missing: " << line;
    if (j["msg"] == "Request completed") {
      ++completed;
      for (const char* f : {"requestId", "method", "path", "statusCode", "duration", "keyId"})
        EXPECT_TRUE(j.contains(f)) << f << " missing: " << line;
    }
  }
  EXPECT_GE(completed, 4);
  EXPECT_EQ(out.find(secret), std::string::npos);
  EXPECT_EQ(out.find(gw_->admin_key()), std::string::npos);
  EXPECT_EQ(out.find(secret.substr(8, 32)), std::string::npos);
}

TEST_F(ServiceCore, MetricsUseTemplatesNotRawPaths) {
  start();
  auto id = create_key({{"name", "m"}})["id"].get<std::string>();
  call("GET", "/api/v1/keys/" + id);
  auto m = http_request(gw_->port(), "GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("datahub_http_requests_total{"), std::string::npos);
  EXPECT_NE(m.body.find("path=\"/api/v1/keys/:id\""), std::string::npos) << m.body;
  EXPECT_EQ(m.body.find(id), std::string::npos);
  for (const char* name :
       {"datahub_http_request_duration_seconds_bucket", "datahub_active_api_keys",
        "datahub_db_query_duration_seconds_bucket", "datahub_db_connection_pool{status=\"idle\"}"})
    EXPECT_NE(m.body.find(name), std::string::npos) << name;
}

TEST_F(ServiceCore, SigtermDuringBurstCompletesOrRefusesCleanlyAndExitsZero) {
  start({{"SHUTDOWN_DRAIN_MS", "300"}});
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, refused{0}, bad{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      while (!stop) {
        try {
          auto r = call("POST", "/api/v1/keys", json{{"name", "burst"}}.dump());
          if (r.status == 201)
            ++ok;
          else if (r.status == 503)
            ++refused;
          else
            ++bad;
        } catch (const std::exception&) {
          ++refused;  // connection refused once the listener is closed
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto pid = gw_->pid();
  auto exit_code = std::async(std::launch::async, [&] { return gw_->stop(SIGTERM); });
  const int code = exit_code.get();
  stop = true;
  for (auto& c : clients)
    c.join();
  EXPECT_EQ(code, 0) << gw_->output();
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(bad.load(), 0);
  (void)pid;
  // Every 201 the clients saw is in the database.
  EXPECT_GE(std::stoi(db_.exec("SELECT count(*) FROM api_keys WHERE name = 'burst'")), ok.load());
}

TEST(Commands, MissingRequiredConfigurationExitsTwoNamingEachVariable) {
  auto r = run_datahub({"serve"}, {});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("DATABASE_URL"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("API_KEY_SALT"), std::string::npos) << r.output;
  auto seed_admin = run_datahub({"serve"}, {{"DATABASE_URL", "postgresql://x"},
                                            {"API_KEY_SALT", "s"},
                                            {"ADMIN_API_KEY", "dh_live_initial_admin_key"}});
  EXPECT_EQ(seed_admin.exit_code, 2);
  EXPECT_NE(seed_admin.output.find("datahub keys generate"), std::string::npos);
}

TEST(Commands, KeysGeneratePrintsAWellFormedSecret) {
  auto r = run_datahub({"keys", "generate"}, {});
  ASSERT_EQ(r.exit_code, 0);
  const auto secret = r.output.substr(0, r.output.find('\n'));
  EXPECT_TRUE(core::check_secret_format(secret)) << secret;
}

TEST(Commands, MigrateStatusThenMigrateThenConcurrentMigrates) {
  scratch_database db;
  auto status = run_datahub({"migrate", "status"}, {{"DATABASE_URL", db.url()}});
  EXPECT_NE(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("pending"), std::string::npos) << status.output;

  std::vector<std::future<command_result>> runs;
  for (int i = 0; i < 3; ++i)
    runs.push_back(std::async(std::launch::async, [&] {
      return run_datahub({"migrate"}, {{"DATABASE_URL", db.url()}});
    }));
  int applied_lines = 0;
  for (auto& f : runs) {
    auto r = f.get();
    EXPECT_EQ(r.exit_code, 0) << r.output;
    for (size_t pos = 0; (pos = r.output.find("applied ", pos)) != std::string::npos; ++pos)
      ++applied_lines;
  }
  const int migrations = std::stoi(db.exec("SELECT count(*) FROM schema_migrations"));
  EXPECT_EQ(applied_lines, migrations) << "each migration applied exactly once";
  auto after = run_datahub({"migrate", "status"}, {{"DATABASE_URL", db.url()}});
  EXPECT_EQ(after.exit_code, 0) << after.output;

  auto missing = run_datahub({"migrate"}, {});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.output.find("DATABASE_URL"), std::string::npos);
}

}  // namespace
}  // namespace datahub::testing
