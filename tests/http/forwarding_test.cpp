// Request and answer rewriting on the way through the proxy (SPEC 3.3) and the rate-limit
// header values (SPEC 3.4), without sockets.
#include "http/forwarding.hpp"

#include <gtest/gtest.h>

namespace datahub::http {
namespace {

class Forwarding : public ::testing::Test {
 protected:
  Forwarding() {
    route_.name = "data";
    route_.path_prefix = "/api/v1/data/";
    route_.upstream.host = "127.0.0.1";
    route_.upstream.port = 8081;
    route_.upstream.authority = "127.0.0.1:8081";
    context_.request_id = "req_01TEST";
    context_.remote_ip = "10.1.2.3";
    context_.key_id = "key_01KEY";
  }

  request client(bh::verb method, std::string target, std::string body = {}) const {
    request req{method, target, 11};
    req.set(bh::field::host, "gateway.example:3000");
    req.body() = std::move(body);
    return req;
  }

  route route_;
  forward_context context_;
};

TEST_F(Forwarding, KeepsPathAndQueryWithoutStripPrefix) {
  EXPECT_EQ(upstream_target_of(route_, "/api/v1/data/items/7", "a=1&b=2"),
            "/api/v1/data/items/7?a=1&b=2");
  EXPECT_EQ(upstream_target_of(route_, "/api/v1/data/", ""), "/api/v1/data/");
}

TEST_F(Forwarding, StripsPrefixAndKeepsALeadingSlash) {
  route_.strip_prefix = true;
  EXPECT_EQ(upstream_target_of(route_, "/api/v1/data/items/7", ""), "/items/7");
  EXPECT_EQ(upstream_target_of(route_, "/api/v1/data/", "q=x"), "/?q=x");
  route_.path_prefix = "/api/v1/data";
  EXPECT_EQ(upstream_target_of(route_, "/api/v1/data/items", ""), "/items");
  EXPECT_EQ(upstream_target_of(route_, "/api/v1/data", ""), "/");
}

TEST_F(Forwarding, PrependsTheUpstreamBasePath) {
  route_.upstream.base_path = "/v2";
  EXPECT_EQ(upstream_target_of(route_, "/api/v1/data/items", "x=1"), "/v2/api/v1/data/items?x=1");
  route_.strip_prefix = true;
  EXPECT_EQ(upstream_target_of(route_, "/api/v1/data/items", ""), "/v2/items");
  EXPECT_EQ(upstream_target_of(route_, "/api/v1/data/", ""), "/v2/");
}

TEST_F(Forwarding, RemovesHopByHopHeadersAndTheKey) {
  auto req = client(bh::verb::get, "/api/v1/data/x");
  req.set(bh::field::connection, "keep-alive, X-Secret-Hop");
  req.set("X-Secret-Hop", "1");
  req.set(bh::field::keep_alive, "timeout=5");
  req.set("Proxy-Connection", "keep-alive");
  req.set(bh::field::te, "trailers");
  req.set(bh::field::trailer, "X-Checksum");
  req.set(bh::field::upgrade, "websocket");
  req.set(bh::field::proxy_authorization, "Basic abc");
  req.set(bh::field::proxy_authenticate, "Basic");
  req.set(bh::field::expect, "100-continue");
  req.set("X-API-Key", "dh_live_secret");
  req.set(bh::field::authorization, "Bearer other-token");
  req.set(bh::field::accept, "application/json");
  req.set("X-Custom", "kept");

  auto out = build_upstream_request(req, route_, "/api/v1/data/x", "", context_);
  for (const char* gone :
       {"Connection", "X-Secret-Hop", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade",
        "Proxy-Authorization", "Proxy-Authenticate", "Expect", "X-API-Key"})
    EXPECT_EQ(out.find(gone), out.end()) << gone;
  // The key came in X-API-Key: Authorization belongs to the upstream and is forwarded.
  EXPECT_EQ(out[bh::field::authorization], "Bearer other-token");
  EXPECT_EQ(out[bh::field::accept], "application/json");
  EXPECT_EQ(out["X-Custom"], "kept");
  EXPECT_TRUE(out.keep_alive());
  EXPECT_EQ(out.version(), 11);
}

TEST_F(Forwarding, DropsAuthorizationWhenItCarriedTheKey) {
  auto req = client(bh::verb::get, "/api/v1/data/x");
  req.set(bh::field::authorization, "Bearer dh_live_secret");
  context_.key_in_authorization = true;
  auto out = build_upstream_request(req, route_, "/api/v1/data/x", "", context_);
  EXPECT_EQ(out.find(bh::field::authorization), out.end());
}

TEST_F(Forwarding, SetsTheGatewaysOwnHeadersOverTheClients) {
  auto req = client(bh::verb::get, "/api/v1/data/x?y=1");
  req.set("X-Request-Id", "client-chosen");
  req.set("X-DataHub-Key-Id", "key_forged");
  req.set("X-Forwarded-Proto", "https");
  req.set("X-Forwarded-Host", "forged.example");
  req.insert("X-Forwarded-For", "192.0.2.1");
  req.insert("X-Forwarded-For", "198.51.100.2, 203.0.113.3");

  auto out = build_upstream_request(req, route_, "/api/v1/data/x", "y=1", context_);
  EXPECT_EQ(out.target(), "/api/v1/data/x?y=1");
  EXPECT_EQ(out[bh::field::host], "127.0.0.1:8081");
  EXPECT_EQ(out["X-Forwarded-Host"], "gateway.example:3000");
  EXPECT_EQ(out["X-Forwarded-Proto"], "http");
  EXPECT_EQ(out["X-Forwarded-For"], "192.0.2.1, 198.51.100.2, 203.0.113.3, 10.1.2.3");
  EXPECT_EQ(out["X-Request-Id"], "req_01TEST");
  EXPECT_EQ(out["X-DataHub-Key-Id"], "key_01KEY");
  EXPECT_EQ(std::distance(out.equal_range("X-Forwarded-For").first,
                          out.equal_range("X-Forwarded-For").second),
            1);
  EXPECT_EQ(std::distance(out.equal_range("X-DataHub-Key-Id").first,
                          out.equal_range("X-DataHub-Key-Id").second),
            1);
}

TEST_F(Forwarding, StartsXForwardedForWhenTheClientSentNone) {
  auto req = client(bh::verb::get, "/api/v1/data/x");
  auto out = build_upstream_request(req, route_, "/api/v1/data/x", "", context_);
  EXPECT_EQ(out["X-Forwarded-For"], "10.1.2.3");
}

TEST_F(Forwarding, ReframesTheBufferedBodyWithContentLength) {
  auto req = client(bh::verb::post, "/api/v1/data/x", "hello");
  req.set(bh::field::transfer_encoding, "chunked");
  req.set(bh::field::content_length, "999");
  auto out = build_upstream_request(req, route_, "/api/v1/data/x", "", context_);
  EXPECT_EQ(out.body(), "hello");
  EXPECT_EQ(out[bh::field::content_length], "5");
  EXPECT_EQ(out.find(bh::field::transfer_encoding), out.end());
  EXPECT_EQ(out.method(), bh::verb::post);

  auto empty_post = client(bh::verb::post, "/api/v1/data/x");
  EXPECT_EQ(build_upstream_request(empty_post, route_, "/api/v1/data/x", "",
                                   context_)[bh::field::content_length],
            "0");
  auto get = client(bh::verb::get, "/api/v1/data/x");
  auto forwarded_get = build_upstream_request(get, route_, "/api/v1/data/x", "", context_);
  EXPECT_EQ(forwarded_get.find(bh::field::content_length), forwarded_get.end());
}

TEST_F(Forwarding, KeepsAnUnknownMethod) {
  request req;
  req.method_string("BREW");
  req.target("/api/v1/data/pot");
  req.version(11);
  auto out = build_upstream_request(req, route_, "/api/v1/data/pot", "", context_);
  EXPECT_EQ(out.method_string(), "BREW");
}

TEST_F(Forwarding, FiltersHopByHopHeadersFromAnswers) {
  response res{bh::status::ok, 11};
  res.set(bh::field::connection, "close, X-Internal");
  res.set("X-Internal", "debug");
  res.set(bh::field::keep_alive, "timeout=5");
  res.set(bh::field::transfer_encoding, "chunked");
  res.set(bh::field::upgrade, "h2c");
  res.set(bh::field::trailer, "X-Sum");
  res.set(bh::field::proxy_authenticate, "Basic");
  res.set(bh::field::content_type, "text/plain");
  res.set(bh::field::set_cookie, "a=b");
  filter_response_headers(res);
  for (const char* gone : {"Connection", "X-Internal", "Keep-Alive", "Transfer-Encoding", "Upgrade",
                           "Trailer", "Proxy-Authenticate"})
    EXPECT_EQ(res.find(gone), res.end()) << gone;
  EXPECT_EQ(res[bh::field::content_type], "text/plain");
  EXPECT_EQ(res[bh::field::set_cookie], "a=b");
}

TEST_F(Forwarding, RecognisesHopByHopNamesInAnyCase) {
  EXPECT_TRUE(is_hop_by_hop("connection"));
  EXPECT_TRUE(is_hop_by_hop("TRANSFER-ENCODING"));
  EXPECT_TRUE(is_hop_by_hop("te"));
  EXPECT_FALSE(is_hop_by_hop("Content-Length"));
  EXPECT_FALSE(is_hop_by_hop("X-Connection"));

  bh::fields f;
  f.insert(bh::field::connection, "keep-alive");
  f.insert(bh::field::connection, " x-a ,X-B");
  EXPECT_TRUE(named_in_connection(f, "X-A"));
  EXPECT_TRUE(named_in_connection(f, "x-b"));
  EXPECT_TRUE(named_in_connection(f, "Keep-Alive"));
  EXPECT_FALSE(named_in_connection(f, "X-C"));
  EXPECT_FALSE(named_in_connection(f, "x"));
}

TEST_F(Forwarding, FormatsRateLimitHeadersForTheTightestWindow) {
  actors::window_state minute{"minute", 60, 100, 57, 23};
  actors::window_state hour{"hour", 3600, 5000, 4000, 1800};
  EXPECT_EQ(rate_limit_policy_value(minute, hour), "\"minute\";q=100;w=60, \"hour\";q=5000;w=3600");
  EXPECT_EQ(rate_limit_value(minute), "\"minute\";r=57;t=23");

  response res{bh::status::ok, 11};
  set_rate_limit_headers(res, minute, hour, hour);
  EXPECT_EQ(res["RateLimit-Policy"], "\"minute\";q=100;w=60, \"hour\";q=5000;w=3600");
  EXPECT_EQ(res["RateLimit"], "\"hour\";r=4000;t=1800");
  EXPECT_EQ(res["X-RateLimit-Limit"], "5000");
  EXPECT_EQ(res["X-RateLimit-Remaining"], "4000");
  EXPECT_EQ(res["X-RateLimit-Reset"], "1800");

  set_rate_limit_headers(res, minute, hour, minute);
  EXPECT_EQ(res["RateLimit"], "\"minute\";r=57;t=23");
  EXPECT_EQ(res["X-RateLimit-Limit"], "100");
  EXPECT_EQ(res["X-RateLimit-Remaining"], "57");
  EXPECT_EQ(res["X-RateLimit-Reset"], "23");
  EXPECT_EQ(std::distance(res.equal_range("RateLimit").first, res.equal_range("RateLimit").second),
            1);
}

}  // namespace
}  // namespace datahub::http
