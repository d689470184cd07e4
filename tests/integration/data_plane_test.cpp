// End-to-end tests of the data plane (SPEC 3): routes, the order of checks, rate limits and
// their headers, forwarding rules, upstream failures, and bad input, with the real binary, a
// real PostgreSQL and an echo upstream on loopback.
#include <atomic>
#include <csignal>
#include <fstream>
#include <future>
#include <random>
#include <regex>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "core/secrets.hpp"
#include "core/time.hpp"
#include "tests/support/echo_upstream.hpp"
#include "tests/support/harness.hpp"
#include "tests/support/tcp_forwarder.hpp"

namespace datahub::testing {
namespace {

using json = nlohmann::json;
using headers = std::map<std::string, std::string>;

class DataPlane : public ::testing::Test {
 protected:
  void SetUp() override {
    routes_path_ = ::testing::TempDir() + "routes-" + std::to_string(::getpid()) + "-" +
                   std::to_string(reinterpret_cast<uintptr_t>(this)) + ".yaml";
    write_routes(false);
    gw_ = std::make_unique<gateway_process>(
        db_.url(), std::map<std::string, std::string>{{"ROUTES_FILE", routes_path_},
                                                      {"MAX_BODY_BYTES", "65536"},
                                                      {"DEFAULT_RATE_LIMIT_MINUTE", "1000"},
                                                      {"USAGE_FLUSH_INTERVAL_MS", "200"},
                                                      {"MAX_HEADER_BYTES", "4096"},
                                                      {"HEADER_TIMEOUT_MS", "1500"}});
    ASSERT_TRUE(gw_->wait_ready()) << gw_->output();
  }

  void TearDown() override { std::remove(routes_path_.c_str()); }

  void write_routes(bool with_extra) {
    const auto up = std::to_string(upstream_.port());
    std::ofstream out{routes_path_};
    out << "routes:\n"
        << "  - name: data\n    path_prefix: /api/v1/data/\n    upstream: http://127.0.0.1:" << up
        << "\n    scopes: [data:read]\n    methods: [GET, POST]\n    timeout_ms: 30000\n"
        << "  - name: slow\n    path_prefix: /slow/\n    upstream: http://127.0.0.1:" << up
        << "\n    timeout_ms: 700\n"
        << "  - name: closed\n    path_prefix: /closed/\n    upstream: http://127.0.0.1:"
        << closed_port_ << "\n"
        << "  - name: strip\n    path_prefix: /strip/\n    upstream: http://127.0.0.1:" << up
        << "/base\n    strip_prefix: true\n";
    if (with_extra)
      out << "  - name: extra\n    path_prefix: /extra/\n    upstream: http://127.0.0.1:" << up
          << "\n";
  }

  headers admin() const {
    return {{"Authorization", "Bearer " + gw_->admin_key()}, {"Content-Type", "application/json"}};
  }

  json create_key(const json& body) {
    auto r = http_request(gw_->port(), "POST", "/api/v1/keys", admin(), body.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json();
  }

  std::string key(int per_minute = 1000, int per_hour = 100000,
                  std::vector<std::string> scopes = {"data:read"}) {
    return create_key(
        {{"name", "client"},
         {"scopes", scopes},
         {"rate_limit", {{"per_minute", per_minute}, {"per_hour", per_hour}}}})["secret"];
  }

  http_response get(const std::string& target, const std::string& secret, headers extra = {}) {
    extra["X-API-Key"] = secret;
    return http_request(gw_->port(), "GET", target, extra);
  }

  static void expect_error(const http_response& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    auto j = r.json();
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_EQ(j["error"]["code"], code) << r.body;
  }

  static int metric_series(const std::string& body) {
    int n = 0;
    std::istringstream in{body};
    std::string line;
    while (std::getline(in, line))
      if (!line.empty() && line[0] != '#')
        ++n;
    return n;
  }

  scratch_database db_;
  echo_upstream upstream_;
  uint16_t closed_port_ = free_port();
  std::string routes_path_;
  std::unique_ptr<gateway_process> gw_;
};

TEST_F(DataPlane, ForwardsWithRateLimitHeaders) {
  const auto secret = key(100, 5000);
  auto r = get("/api/v1/data/items?x=1", secret);
  ASSERT_EQ(r.status, 200) << r.body;
  auto echoed = r.json();
  EXPECT_EQ(echoed["target"], "/api/v1/data/items?x=1");
  EXPECT_EQ(r.header("ratelimit-policy"), "\"minute\";q=100;w=60, \"hour\";q=5000;w=3600");
  EXPECT_TRUE(
      std::regex_match(r.header("ratelimit"), std::regex{"\"(minute|hour)\";r=[0-9]+;t=[0-9]+"}))
      << r.header("ratelimit");
  EXPECT_EQ(r.header("x-ratelimit-limit"), "100");
  EXPECT_EQ(r.header("x-ratelimit-remaining"), "99");
  EXPECT_FALSE(r.header("x-ratelimit-reset").empty());
  EXPECT_FALSE(r.header("x-request-id").empty());
  EXPECT_EQ(r.header("x-upstream"), "echo");
}

TEST_F(DataPlane, UpstreamSeesForwardingHeadersButNeverTheKeyOrHopByHopHeaders) {
  const auto secret = key();
  auto r = http_request(gw_->port(), "GET", "/api/v1/data/echo",
                        {{"Authorization", "Bearer " + secret},
                         {"X-API-Key", secret},
                         {"Connection", "keep-alive, X-Drop-Me"},
                         {"X-Drop-Me", "1"},
                         {"Keep-Alive", "timeout=5"},
                         {"TE", "trailers"},
                         {"X-Forwarded-For", "203.0.113.7"},
                         {"X-Request-Id", "client-chosen-id-1"},
                         {"X-Custom", "kept"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const auto h = r.json()["headers"];
  std::map<std::string, std::string> lower;
  for (auto& [k, v] : h.items()) {
    std::string name = k;
    for (auto& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    lower[name] = v;
  }
  for (const char* gone : {"x-api-key", "authorization", "x-drop-me", "keep-alive", "te"})
    EXPECT_EQ(lower.count(gone), 0u) << gone << " reached the upstream";
  EXPECT_EQ(lower["x-request-id"], "client-chosen-id-1");
  EXPECT_EQ(lower["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
  EXPECT_EQ(lower["x-forwarded-proto"], "http");
  EXPECT_FALSE(lower["x-forwarded-host"].empty());
  EXPECT_EQ(lower["x-datahub-key-id"].rfind("key_", 0), 0u);
  EXPECT_EQ(lower["x-custom"], "kept");
  EXPECT_EQ(r.header("x-request-id"), "client-chosen-id-1");
  EXPECT_TRUE(r.header("x-secret-hop").empty()) << "Connection-named response header leaked";
  EXPECT_TRUE(r.header("keep-alive").empty());
}

TEST_F(DataPlane, StripsPrefixOntoUpstreamBasePath) {
  const auto secret = key();
  auto r = get("/strip/a/b?q=1", secret);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["target"], "/base/a/b?q=1");
}

TEST_F(DataPlane, FivePerMinuteKeyGetsFiveThenRetryAfterThenOneMore) {
  const auto secret = key(5, 100);
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(get("/api/v1/data/x", secret).status, 200) << i;
  auto limited = get("/api/v1/data/x", secret);
  expect_error(limited, 429, "rate_limit_exceeded");
  const int retry_after = std::stoi(limited.header("retry-after"));
  EXPECT_GE(retry_after, 1);
  EXPECT_LE(retry_after, 60);
  std::smatch m;
  const auto rl = limited.header("ratelimit");
  ASSERT_TRUE(std::regex_match(rl, m, std::regex{"\"minute\";r=0;t=([0-9]+)"})) << rl;
  EXPECT_EQ(std::stoi(m[1]), retry_after);
  EXPECT_EQ(limited.header("x-ratelimit-remaining"), "0");
  EXPECT_EQ(limited.header("x-ratelimit-reset"), std::to_string(retry_after));
  EXPECT_EQ(limited.header("x-ratelimit-limit"), "5");
  std::this_thread::sleep_for(std::chrono::seconds(retry_after));
  EXPECT_EQ(get("/api/v1/data/x", secret).status, 200);
}

TEST_F(DataPlane, HourLimitRefusesFourthCallAndIsNamed) {
  // 1000 per minute (this gateway's default) and 3 per hour: a partial limit combines with the
  // default; an explicit pair with per_hour below per_minute is refused (admin validation).
  auto created = create_key(
      {{"name", "hourly"}, {"scopes", {"data:read"}}, {"rate_limit", {{"per_hour", 3}}}});
  EXPECT_EQ(created["rate_limit"]["per_minute"], 1000);
  EXPECT_EQ(created["rate_limit"]["per_hour"], 3);
  const std::string secret = created["secret"];
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(get("/api/v1/data/x", secret).status, 200);
  auto limited = get("/api/v1/data/x", secret);
  expect_error(limited, 429, "rate_limit_exceeded");
  EXPECT_EQ(limited.header("ratelimit").rfind("\"hour\";r=0;", 0), 0u)
      << limited.header("ratelimit");
  EXPECT_EQ(limited.header("x-ratelimit-limit"), "3");
  EXPECT_GE(std::stoi(limited.header("retry-after")), 60);
}

TEST_F(DataPlane, ConcurrentRequestsAdmitExactlyTheLimit) {
  const auto secret = key(50, 1000);
  std::atomic<int> ok{0}, limited{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 30; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        const auto status = get("/api/v1/data/x", secret).status;
        (status == 200 ? ok : status == 429 ? limited : other)++;
      }
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(ok.load(), 50);
  EXPECT_EQ(limited.load(), 250);
  EXPECT_EQ(other.load(), 0);
}

TEST_F(DataPlane, RevokedKeyIsRefusedAndRaisedLimitAppliesAtOnce) {
  auto created = create_key({{"name", "c"},
                             {"scopes", {"data:read"}},
                             {"rate_limit", {{"per_minute", 2}, {"per_hour", 100}}}});
  const std::string secret = created["secret"];
  const std::string id = created["id"];
  EXPECT_EQ(get("/api/v1/data/x", secret).status, 200);
  EXPECT_EQ(get("/api/v1/data/x", secret).status, 200);
  EXPECT_EQ(get("/api/v1/data/x", secret).status, 429);
  auto patched = http_request(gw_->port(), "PATCH", "/api/v1/keys/" + id, admin(),
                              json{{"rate_limit", {{"per_minute", 4}}}}.dump());
  ASSERT_EQ(patched.status, 200) << patched.body;
  // The two requests already made still count: 2 more, not 4.
  EXPECT_EQ(get("/api/v1/data/x", secret).status, 200);
  EXPECT_EQ(get("/api/v1/data/x", secret).status, 200);
  EXPECT_EQ(get("/api/v1/data/x", secret).status, 429);
  ASSERT_EQ(http_request(gw_->port(), "DELETE", "/api/v1/keys/" + id, admin()).status, 200);
  expect_error(get("/api/v1/data/x", secret), 401, "invalid_api_key");
}

TEST_F(DataPlane, UsageIsWrittenInBatchesWithLastUsedAt) {
  auto created = create_key({{"name", "metered"},
                             {"scopes", {"data:read"}},
                             {"rate_limit", {{"per_minute", 3}, {"per_hour", 100}}}});
  const std::string secret = created["secret"];
  const std::string id = created["id"];
  for (int i = 0; i < 4; ++i)
    get("/api/v1/data/x", secret);  // 3 admitted, 1 refused
  std::string row;
  for (int i = 0; i < 50 && row.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    row = db_.exec(
        "SELECT requests || '/' || status_2xx || '/' || status_4xx || '/' || "
        "rate_limited || '/' || (bytes_out > 0) FROM api_key_usage WHERE key_id = '" +
        id + "'");
  }
  EXPECT_EQ(row, "4/3/1/1/true");
  EXPECT_EQ(db_.exec("SELECT count(*) FROM api_key_usage WHERE key_id = '" + id + "'"), "1");
  const auto used = http_request(gw_->port(), "GET", "/api/v1/keys/" + id, admin()).json();
  ASSERT_TRUE(used["last_used_at"].is_string()) << used.dump();
  EXPECT_EQ(used["last_used_at"].get<std::string>().substr(17), "00.000Z")
      << "last_used_at has one-minute precision";
}

TEST_F(DataPlane, KnownKeysKeepWorkingWhilePostgresIsGone) {
  // A second gateway on the same database, reaching PostgreSQL through a forwarder the test cuts.
  const auto url = db_.url();
  const auto at = url.find('@');
  const auto colon = url.find(':', at);
  const auto slash = url.find('/', colon);
  tcp_forwarder forward{static_cast<uint16_t>(std::stoi(url.substr(colon + 1, slash - colon - 1)))};
  gateway_process gw{url.substr(0, colon + 1) + std::to_string(forward.port()) + url.substr(slash),
                     {{"ROUTES_FILE", routes_path_}, {"USAGE_FLUSH_INTERVAL_MS", "200"}}};
  ASSERT_TRUE(gw.wait_ready()) << gw.output();
  const headers admin_headers{{"Authorization", "Bearer " + gw.admin_key()},
                              {"Content-Type", "application/json"}};
  auto created = http_request(gw.port(), "POST", "/api/v1/keys", admin_headers,
                              json{{"name", "known"}, {"scopes", {"data:read"}}}.dump());
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string secret = created.json()["secret"];
  ASSERT_EQ(http_request(gw.port(), "GET", "/api/v1/data/x", {{"X-API-Key", secret}}).status, 200);

  forward.cut();
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(http_request(gw.port(), "GET", "/api/v1/data/x", {{"X-API-Key", secret}}).status,
              200);
  EXPECT_EQ(http_request(gw.port(), "POST", "/api/v1/keys", admin_headers,
                         json{{"name", "while-down"}}.dump())
                .status,
            503);
  EXPECT_EQ(http_request(gw.port(), "GET", "/health/ready").status, 503);

  forward.restore();
  // The usage counted while PostgreSQL was gone is written once it is back.
  std::string requests;
  for (int i = 0; i < 50 && requests != "6"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    requests = db_.exec("SELECT coalesce(sum(requests), 0) FROM api_key_usage WHERE key_id = '" +
                        created.json()["id"].get<std::string>() + "'");
  }
  EXPECT_EQ(requests, "6");
}

TEST_F(DataPlane, UpstreamCredentialsBesideTheKeyAreForwarded) {
  const auto secret = key();
  auto r = http_request(gw_->port(), "GET", "/api/v1/data/echo",
                        {{"X-API-Key", secret}, {"Authorization", "Basic dXNlcjpwYXNz"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["headers"]["Authorization"], "Basic dXNlcjpwYXNz");
  EXPECT_FALSE(r.json()["headers"].contains("X-API-Key"));
}

TEST_F(DataPlane, ChunkedTrailersAreNotTakenAsHeaders) {
  const auto secret = key();
  const auto before = upstream_.requests();
  const auto answer = raw_exchange(gw_->port(),
                                   "POST /api/v1/data/t HTTP/1.1\r\nHost: x\r\n"
                                   "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                   "5\r\nhello\r\n0\r\nX-API-Key: " +
                                       secret + "\r\n\r\n");
  EXPECT_NE(answer.find("HTTP/1.1 401"), std::string::npos) << answer;
  EXPECT_NE(answer.find("missing_api_key"), std::string::npos) << answer;
  EXPECT_EQ(upstream_.requests(), before);
}

TEST_F(DataPlane, HalfClosedClientStillGetsItsAnswer) {
  const auto secret = key();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(gw_->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string request =
      "GET /api/v1/data/x HTTP/1.1\r\nHost: x\r\nX-API-Key: " + secret + "\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  ::shutdown(fd, SHUT_WR);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string answer;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0)
    answer.append(buf, static_cast<size_t>(n));
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
}

TEST_F(DataPlane, RequestsWithoutOrWithTwoHostsAreRefused) {
  const auto secret = key();
  EXPECT_NE(
      raw_exchange(gw_->port(), "GET /api/v1/data/x HTTP/1.1\r\nX-API-Key: " + secret + "\r\n\r\n")
          .find("HTTP/1.1 400"),
      std::string::npos);
  EXPECT_NE(raw_exchange(gw_->port(),
                         "GET /api/v1/data/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n"
                         "X-API-Key: " +
                             secret + "\r\n\r\n")
                .find("HTTP/1.1 400"),
            std::string::npos);
}

TEST_F(DataPlane, InventedMethodsShareOneMetricsLabel) {
  for (int i = 0; i < 20; ++i)
    raw_exchange(gw_->port(), "FOO" + std::to_string(i) + " /x HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto m = http_request(gw_->port(), "GET", "/metrics").body;
  EXPECT_EQ(m.find("method=\"FOO1"), std::string::npos);
  EXPECT_NE(m.find("method=\"OTHER\""), std::string::npos) << m;
}

TEST_F(DataPlane, SigtermWithARequestInFlightAnswersItAndExitsZero) {
  const auto secret = key();
  auto pending = std::async(std::launch::async, [&] {
    return http_request(gw_->port(), "GET", "/slow/never", {{"X-API-Key", secret}}).status;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(gw_->stop(SIGTERM), 0) << gw_->output();
  EXPECT_EQ(pending.get(), 504);
}

TEST_F(DataPlane, RefusesInTheSpecifiedOrder) {
  const auto secret = key();
  const auto before = upstream_.requests();
  expect_error(http_request(gw_->port(), "GET", "/nowhere"), 404, "route_not_found");
  expect_error(http_request(gw_->port(), "DELETE", "/api/v1/data/x"), 405, "method_not_allowed");
  expect_error(http_request(gw_->port(), "GET", "/api/v1/data/x"), 401, "missing_api_key");
  expect_error(get("/api/v1/data/x", ""), 401, "invalid_api_key");
  expect_error(http_request(gw_->port(), "GET", "/api/v1/data/x", {{"Authorization", "Bearer"}}),
               401, "invalid_api_key");
  expect_error(
      http_request(gw_->port(), "GET", "/api/v1/data/x", {{"Authorization", "Basic dXNlcjpwYXNz"}}),
      401, "invalid_api_key");
  auto flipped = secret;
  flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
  expect_error(get("/api/v1/data/x", flipped), 401, "invalid_api_key");
  auto bad_sum = secret;
  bad_sum.back() = bad_sum.back() == '0' ? '1' : '0';
  expect_error(get("/api/v1/data/x", bad_sum), 401, "invalid_api_key");
  expect_error(get("/api/v1/data/x", secret + "junk"), 401, "invalid_api_key");
  expect_error(get("/api/v1/data/x", secret.substr(0, 20) + "\xc3\xa9" + secret.substr(22)), 401,
               "invalid_api_key");
  expect_error(get("/api/v1/data/x", std::string(3000, 'k')), 401, "invalid_api_key");
  expect_error(http_request(gw_->port(), "GET", "/api/v1/data/x",
                            {{"X-API-Key", secret}, {"Authorization", "Bearer " + key()}}),
               401, "invalid_api_key");
  expect_error(get("/api/v1/data/x", core::generate_secret(core::key_environment::live)), 401,
               "invalid_api_key");
  auto expiring =
      create_key({{"name", "soon"},
                  {"scopes", {"data:read"}},
                  {"expires_at", core::to_rfc3339(core::now() + std::chrono::seconds(2))}});
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  expect_error(get("/api/v1/data/x", expiring["secret"]), 401, "invalid_api_key");
  expect_error(get("/api/v1/data/x", key(1000, 100000, {"other:scope"})), 403,
               "insufficient_scope");
  EXPECT_EQ(upstream_.requests(), before) << "a refused request reached the upstream";
}

TEST_F(DataPlane, RefusesAmbiguousPathsAndFraming) {
  const auto secret = key();
  const auto before = upstream_.requests();
  for (const char* target : {"/health/../api/v1/data/x", "/api/v1/data/%2e%2e/x",
                             "/api/v1/data/..%2fx", "/api/v1/data/a%5cb", "/api/v1/data/a%00b"})
    expect_error(get(target, secret), 400, "invalid_request");
  const auto raw = [&](const std::string& request) { return raw_exchange(gw_->port(), request); };
  const std::string key_header = "X-API-Key: " + secret + "\r\n";
  EXPECT_NE(raw("GET /api/v1/data/a\\b HTTP/1.1\r\nHost: x\r\n" + key_header + "\r\n")
                .find("HTTP/1.1 400"),
            std::string::npos);
  EXPECT_NE(raw("POST /api/v1/data/x HTTP/1.1\r\nHost: x\r\n" + key_header +
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
                .find("HTTP/1.1 400"),
            std::string::npos);
  EXPECT_NE(raw("POST /api/v1/data/x HTTP/1.1\r\nHost: x\r\n" + key_header +
                "Transfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n")
                .find("HTTP/1.1 400"),
            std::string::npos);
  EXPECT_NE(raw("POST /api/v1/data/x HTTP/1.1\r\nHost: x\r\n" + key_header +
                "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
                .find("HTTP/1.1 400"),
            std::string::npos);
  EXPECT_NE(raw("POST /api/v1/data/x HTTP/1.1\r\nHost: x\r\n" + key_header +
                "Content-Length: +3\r\n\r\nabc")
                .find("HTTP/1.1 400"),
            std::string::npos);
  auto big = raw("POST /api/v1/data/x HTTP/1.1\r\nHost: x\r\n" + key_header +
                 "Content-Length: 1000000\r\n\r\n");
  EXPECT_NE(big.find("HTTP/1.1 413"), std::string::npos) << big;
  std::string chunked = "POST /api/v1/data/x HTTP/1.1\r\nHost: x\r\n" + key_header +
                        "Transfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 20; ++i)
    chunked += "1000\r\n" + std::string(4096, 'z') + "\r\n";
  chunked += "0\r\n\r\n";
  EXPECT_NE(raw(chunked).find("HTTP/1.1 413"), std::string::npos);
  EXPECT_NE(raw("GET /api/v1/data/x HTTP/1.1\r\nHost: x\r\n" + key_header +
                "X-Big: " + std::string(8000, 'h') + "\r\n\r\n")
                .find("HTTP/1.1 431"),
            std::string::npos);
  EXPECT_EQ(upstream_.requests(), before) << "a refused request reached the upstream";
  // The double slash is not collapsed: it is routed as written (no route owns it).
  expect_error(get("/api//v1/data/x", secret), 404, "route_not_found");
}

TEST_F(DataPlane, SlowHeaderClientIsCutOffWhileOthersAreServed) {
  const auto secret = key();
  {
    std::atomic<bool> closed{false};
    std::thread slow([&] {
      // One header byte every 400 ms: 1.5 s header timeout cuts it off well before the end.
      const std::string request =
          "GET /api/v1/data/x HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaa\r\n\r\n";
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(gw_->port());
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
      for (char c : request) {
        if (::send(fd, &c, 1, MSG_NOSIGNAL) <= 0) {
          closed = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(400));
        char buf[16];
        if (::recv(fd, buf, sizeof buf, MSG_DONTWAIT) == 0) {
          closed = true;
          break;
        }
      }
      ::close(fd);
    });
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(get("/api/v1/data/x", secret).status, 200);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    slow.join();
    EXPECT_TRUE(closed.load()) << "the slow client was never cut off";
  }
}

TEST_F(DataPlane, UpstreamFailuresAre502And504NeverAnythingElse) {
  const auto secret = key();
  const auto t0 = std::chrono::steady_clock::now();
  expect_error(get("/closed/x", secret), 502, "upstream_unavailable");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  const auto t1 = std::chrono::steady_clock::now();
  expect_error(get("/slow/never", secret), 504, "upstream_timeout");
  const auto waited = std::chrono::steady_clock::now() - t1;
  EXPECT_GE(waited, std::chrono::milliseconds(650));
  EXPECT_LT(waited, std::chrono::seconds(5));
  auto m = http_request(gw_->port(), "GET", "/metrics").body;
  EXPECT_NE(m.find("path=\"closed\",status=\"502\""), std::string::npos) << m;
  EXPECT_NE(m.find("path=\"slow\",status=\"504\""), std::string::npos) << m;
}

TEST_F(DataPlane, RandomPathsDoNotGrowMetricSeriesAndPromtoolAcceptsThem) {
  const auto secret = key(100000, 1000000);
  get("/api/v1/data/warm", secret);
  http_request(gw_->port(), "GET", "/nowhere/warm");
  const int before = metric_series(http_request(gw_->port(), "GET", "/metrics").body);
  std::mt19937 gen{42};
  for (int i = 0; i < 2000; ++i) {
    const auto n = std::to_string(gen());
    if (i % 2 == 0)
      get("/api/v1/data/" + n, secret);
    else
      http_request(gw_->port(), "GET", "/random/" + n);
  }
  const auto body = http_request(gw_->port(), "GET", "/metrics").body;
  EXPECT_LE(metric_series(body), before + 40);
  const auto file = ::testing::TempDir() + "metrics-" + std::to_string(::getpid()) + ".txt";
  {
    std::ofstream out{file};
    out << body;
  }
  const int rc = std::system(("promtool check metrics < " + file + " > /dev/null 2>&1").c_str());
  EXPECT_EQ(rc, 0) << "promtool check metrics refused the exposition";
  std::remove(file.c_str());
}

TEST_F(DataPlane, SighupReloadsRoutesAndKeepsThemOnABadFile) {
  const auto secret = key();
  expect_error(get("/extra/x", secret), 404, "route_not_found");
  write_routes(true);
  ::kill(gw_->pid(), SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(get("/extra/x", secret).status, 200);
  {
    std::ofstream out{routes_path_};
    out << "routes:\n  - name: bad\n    path_prefix: /\n    upstream: http://127.0.0.1:1\n";
  }
  ::kill(gw_->pid(), SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(get("/extra/x", secret).status, 200) << "the previous routes stay in force";
  EXPECT_NE(gw_->output().find("Routes reload refused"), std::string::npos);
}

}  // namespace
}  // namespace datahub::testing
