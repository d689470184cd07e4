// The routes file (SPEC 3.1): parsing, every validation message, and longest-prefix matching.
#include "http/routes.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace datahub::http {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class Routes : public ::testing::Test {
 protected:
  /// The table, failing the test with the messages when the text is refused.
  static std::shared_ptr<const route_table> accepted(const std::string& yaml) {
    auto result = parse_routes(yaml);
    if (auto* errors = std::get_if<std::vector<std::string>>(&result)) {
      std::string all;
      for (const auto& e : *errors)
        all += e + "\n";
      ADD_FAILURE() << "refused:\n" << all;
      return nullptr;
    }
    return std::get<std::shared_ptr<const route_table>>(result);
  }

  /// The messages, failing the test when the text is accepted.
  static std::vector<std::string> refused(const std::string& yaml) {
    auto result = parse_routes(yaml);
    if (auto* errors = std::get_if<std::vector<std::string>>(&result))
      return *errors;
    ADD_FAILURE() << "accepted:\n" << yaml;
    return {};
  }

  /// One route with `extra` lines added (or replacing a field written the same way).
  static std::string one_route(const std::string& name, const std::string& prefix,
                               const std::string& upstream, const std::string& extra = "") {
    return "routes:\n"
           "  - name: " +
           name + "\n    path_prefix: " + prefix + "\n    upstream: " + upstream + "\n" + extra;
  }

  /// The single message for a one-route file whose field `field` has the value `value`.
  static std::string single_problem(const std::string& yaml) {
    auto errors = refused(yaml);
    EXPECT_THAT(errors, SizeIs(1));
    return errors.empty() ? std::string{} : errors.front();
  }
};

TEST_F(Routes, ParsesEveryField) {
  auto table = accepted(R"(
routes:
  - name: data
    path_prefix: /api/v1/data/
    upstream: http://127.0.0.1:8081/base/
    strip_prefix: true
    scopes: [data:read, data.write_x-1]
    methods: [GET, post]
    timeout_ms: 1500
)");
  ASSERT_TRUE(table);
  ASSERT_THAT(table->routes(), SizeIs(1));
  const auto& r = table->routes().front();
  EXPECT_EQ(r.name, "data");
  EXPECT_EQ(r.path_prefix, "/api/v1/data/");
  EXPECT_EQ(r.upstream.scheme, "http");
  EXPECT_EQ(r.upstream.host, "127.0.0.1");
  EXPECT_EQ(r.upstream.port, 8081);
  EXPECT_EQ(r.upstream.base_path, "/base");
  EXPECT_EQ(r.upstream.authority, "127.0.0.1:8081");
  EXPECT_EQ(r.upstream_url, "http://127.0.0.1:8081/base/");
  EXPECT_TRUE(r.strip_prefix);
  EXPECT_EQ(r.scopes, (std::vector<std::string>{"data:read", "data.write_x-1"}));
  EXPECT_EQ(r.methods, (std::vector<std::string>{"GET", "POST"}));
  EXPECT_EQ(r.timeout, std::chrono::milliseconds{1500});
}

TEST_F(Routes, AppliesDefaultsForOptionalFields) {
  auto table = accepted(one_route("data", "/api/v1/data/", "http://Upstream.Example"));
  ASSERT_TRUE(table);
  const auto& r = table->routes().front();
  EXPECT_FALSE(r.strip_prefix);
  EXPECT_TRUE(r.scopes.empty());
  EXPECT_TRUE(r.methods.empty());
  EXPECT_EQ(r.timeout, std::chrono::milliseconds{30000});
  EXPECT_EQ(r.upstream.host, "upstream.example");
  EXPECT_EQ(r.upstream.port, 80);
  EXPECT_EQ(r.upstream.base_path, "");
  EXPECT_EQ(r.upstream.authority, "upstream.example:80");
}

TEST_F(Routes, ParsesIpv6Upstream) {
  auto table = accepted(one_route("v6", "/v6/", "http://[::1]:9000/x"));
  ASSERT_TRUE(table);
  const auto& up = table->routes().front().upstream;
  EXPECT_EQ(up.host, "::1");
  EXPECT_EQ(up.port, 9000);
  EXPECT_EQ(up.authority, "[::1]:9000");
  EXPECT_EQ(up.base_path, "/x");
}

TEST_F(Routes, AcceptsAnEmptyRouteList) {
  auto table = accepted("routes: []\n");
  ASSERT_TRUE(table);
  EXPECT_TRUE(table->routes().empty());
  EXPECT_EQ(table->match("/anything"), nullptr);
}

TEST_F(Routes, RefusesMissingName) {
  auto message =
      single_problem("routes:\n  - path_prefix: /a/\n    upstream: http://127.0.0.1:1\n");
  EXPECT_THAT(message, AllOf(HasSubstr("route 0"), HasSubstr("name is required")));
}

TEST_F(Routes, RefusesBadNames) {
  for (const std::string& name :
       std::vector<std::string>{"Data", "da ta", "data!", std::string(65, 'a'), "\"\""}) {
    auto message = single_problem(one_route(name, "/a/", "http://127.0.0.1:1"));
    EXPECT_THAT(message, AllOf(HasSubstr("route 0"), HasSubstr("name must be 1 to 64"))) << name;
  }
  EXPECT_TRUE(accepted(one_route(std::string(64, 'a'), "/a/", "http://127.0.0.1:1")));
}

TEST_F(Routes, RefusesTheUnmatchedLabelAsName) {
  auto message = single_problem(one_route("unmatched", "/a/", "http://127.0.0.1:1"));
  EXPECT_THAT(message, HasSubstr("name must not be \"unmatched\""));
}

TEST_F(Routes, RefusesDuplicateNames) {
  auto errors = refused(R"(
routes:
  - name: data
    path_prefix: /a/
    upstream: http://127.0.0.1:1
  - name: data
    path_prefix: /b/
    upstream: http://127.0.0.1:1
)");
  ASSERT_THAT(errors, SizeIs(1));
  EXPECT_THAT(errors[0], AllOf(HasSubstr("route 1 (data)"), HasSubstr("name \"data\" is used")));
}

TEST_F(Routes, RefusesDuplicatePrefixes) {
  auto errors = refused(R"(
routes:
  - name: one
    path_prefix: /a/
    upstream: http://127.0.0.1:1
  - name: two
    path_prefix: /a/
    upstream: http://127.0.0.1:2
)");
  ASSERT_THAT(errors, SizeIs(1));
  EXPECT_THAT(errors[0], AllOf(HasSubstr("route 1 (two)"), HasSubstr("path_prefix \"/a/\"")));
}

TEST_F(Routes, RefusesMissingOrRelativePrefix) {
  EXPECT_THAT(single_problem("routes:\n  - name: a\n    upstream: http://127.0.0.1:1\n"),
              AllOf(HasSubstr("route 0 (a)"), HasSubstr("path_prefix is required")));
  EXPECT_THAT(single_problem(one_route("a", "api/v1/data/", "http://127.0.0.1:1")),
              AllOf(HasSubstr("route 0 (a)"), HasSubstr("path_prefix must start with '/'")));
}

TEST_F(Routes, RefusesPrefixWithDotSegmentsOrEncodedSlashes) {
  for (const std::string prefix :
       {"/a/../b/", "/a/./b/", "/a/%2e%2e/", "/a%2fb/", "/a\\\\b/", "/a?b=1", "/a#frag"}) {
    auto message = single_problem(one_route("a", "\"" + prefix + "\"", "http://127.0.0.1:1"));
    EXPECT_THAT(message, AllOf(HasSubstr("route 0 (a)"), HasSubstr("path_prefix"))) << prefix;
  }
}

TEST_F(Routes, RefusesPrefixesThatShadowTheGatewaysOwnPaths) {
  for (const std::string prefix :
       {"/", "/api/", "/api/v1/", "/api/v1/k", "/api/v1/keys", "/api/v1/keys/", "/api/v1/keys/x",
        "/api/v1/webhooks/", "/health", "/health/ready", "/healthz", "/metrics", "/metrics/"}) {
    auto message = single_problem(one_route("a", prefix, "http://127.0.0.1:1"));
    EXPECT_THAT(message, AllOf(HasSubstr("route 0 (a)"), HasSubstr("path_prefix"),
                               HasSubstr("overlaps the gateway's own path")))
        << prefix;
  }
  for (const std::string prefix : {"/api/v1/data/", "/api/v2/", "/data", "/hea/"})
    EXPECT_TRUE(accepted(one_route("a", prefix, "http://127.0.0.1:1"))) << prefix;
}

TEST_F(Routes, RefusesHttpsUpstreamWithAClearMessage) {
  auto message = single_problem(one_route("a", "/a/", "https://127.0.0.1:8443"));
  EXPECT_THAT(message, AllOf(HasSubstr("route 0 (a)"), HasSubstr("upstream"),
                             HasSubstr("https upstreams are not supported")));
}

TEST_F(Routes, RefusesMalformedUpstreams) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ftp://127.0.0.1", "must be an http://"},
      {"127.0.0.1:8080", "must be an http://"},
      {"http://", "has no host"},
      {"http://:80", "has no host"},
      {"http://127.0.0.1:0", "invalid port"},
      {"http://127.0.0.1:65536", "invalid port"},
      {"http://127.0.0.1:8o", "invalid port"},
      {"http://127.0.0.1:", "empty port"},
      {"http://user@127.0.0.1", "user information"},
      {"http://127.0.0.1/x?y=1", "query"},
      {"http://bad_host", "invalid host name"},
      {"http://[::1", "unterminated IPv6"},
      {"http://[zz::1]:80", "invalid IPv6"},
      {"http://127.0.0.1/a/../b", "path"},
  };
  for (const auto& [url, expected] : cases) {
    auto message = single_problem(one_route("a", "/a/", "\"" + url + "\""));
    EXPECT_THAT(message,
                AllOf(HasSubstr("route 0 (a)"), HasSubstr("upstream"), HasSubstr(expected)))
        << url;
  }
  EXPECT_THAT(single_problem("routes:\n  - name: a\n    path_prefix: /a/\n"),
              HasSubstr("upstream is required"));
}

TEST_F(Routes, RefusesTimeoutsOutOfRange) {
  for (const std::string value : {"0", "-5", "600001", "abc", "1.5", "[1]"}) {
    auto message = single_problem(
        one_route("a", "/a/", "http://127.0.0.1:1", "    timeout_ms: " + value + "\n"));
    EXPECT_THAT(message, AllOf(HasSubstr("route 0 (a)"),
                               HasSubstr("timeout_ms must be an integer from 1 to 600000")))
        << value;
  }
  auto table = accepted(one_route("a", "/a/", "http://127.0.0.1:1", "    timeout_ms: 600000\n"));
  ASSERT_TRUE(table);
  EXPECT_EQ(table->routes().front().timeout, std::chrono::milliseconds{600000});
}

TEST_F(Routes, RefusesUnknownMethods) {
  auto message =
      single_problem(one_route("a", "/a/", "http://127.0.0.1:1", "    methods: [GET, FETCH]\n"));
  EXPECT_THAT(message, AllOf(HasSubstr("route 0 (a)"), HasSubstr("methods entry \"FETCH\"")));
  EXPECT_THAT(single_problem(one_route("a", "/a/", "http://127.0.0.1:1", "    methods: GET\n")),
              HasSubstr("methods must be a list"));
}

TEST_F(Routes, RefusesMalformedScopes) {
  for (const std::string scope : {"Data:Read", "\"data read\"", "\"\"", "data/read"}) {
    auto message = single_problem(
        one_route("a", "/a/", "http://127.0.0.1:1", "    scopes: [" + scope + "]\n"));
    EXPECT_THAT(message, AllOf(HasSubstr("route 0 (a)"), HasSubstr("scopes entry"))) << scope;
  }
}

TEST_F(Routes, RefusesNonBooleanStripPrefix) {
  auto message =
      single_problem(one_route("a", "/a/", "http://127.0.0.1:1", "    strip_prefix: maybe\n"));
  EXPECT_THAT(message, AllOf(HasSubstr("route 0 (a)"), HasSubstr("strip_prefix must be true")));
}

TEST_F(Routes, RefusesUnknownFields) {
  auto message = single_problem(one_route("a", "/a/", "http://127.0.0.1:1", "    retries: 3\n"));
  EXPECT_THAT(message, AllOf(HasSubstr("route 0 (a)"), HasSubstr("retries is not a known field")));

  auto errors = refused("routes: []\nlisten: 8080\n");
  ASSERT_THAT(errors, SizeIs(1));
  EXPECT_THAT(errors[0], HasSubstr("listen is not known"));
}

TEST_F(Routes, RefusesDocumentsThatAreNotARouteList) {
  EXPECT_THAT(single_problem(""), HasSubstr("`routes` list"));
  EXPECT_THAT(single_problem("- a\n- b\n"), HasSubstr("`routes` list"));
  EXPECT_THAT(single_problem("routes: 5\n"), HasSubstr("`routes` must be a list"));
  EXPECT_THAT(single_problem("routes:\n  - just a string\n"),
              AllOf(HasSubstr("route 0"), HasSubstr("must be a mapping")));
  EXPECT_THAT(single_problem("routes: [\n"), HasSubstr("not valid YAML"));
}

TEST_F(Routes, ReportsEveryProblemAtOnce) {
  auto errors = refused(R"(
routes:
  - name: Bad
    path_prefix: /health
    upstream: https://x
    timeout_ms: 0
    methods: [BREW]
  - name: fine
    path_prefix: /fine/
    upstream: http://127.0.0.1:1
    colour: blue
)");
  ASSERT_THAT(errors, SizeIs(6));
  EXPECT_THAT(errors[0], HasSubstr("route 0: name"));
  EXPECT_THAT(errors[5], AllOf(HasSubstr("route 1 (fine)"), HasSubstr("colour")));
}

TEST_F(Routes, LongestPrefixWins) {
  auto table = accepted(R"(
routes:
  - name: short
    path_prefix: /api/v1/data/
    upstream: http://127.0.0.1:1
  - name: long
    path_prefix: /api/v1/data/reports/
    upstream: http://127.0.0.1:2
  - name: other
    path_prefix: /api/v2/
    upstream: http://127.0.0.1:3
)");
  ASSERT_TRUE(table);
  auto name_of = [&](std::string_view path) {
    const auto* r = table->match(path);
    return r ? r->name : std::string{"none"};
  };
  EXPECT_EQ(name_of("/api/v1/data/reports/7"), "long");
  EXPECT_EQ(name_of("/api/v1/data/reports/"), "long");
  EXPECT_EQ(name_of("/api/v1/data/reports"), "short");
  EXPECT_EQ(name_of("/api/v1/data/x"), "short");
  EXPECT_EQ(name_of("/api/v1/data"), "none");
  EXPECT_EQ(name_of("/api/v2/anything"), "other");
  EXPECT_EQ(name_of("/api/v3/"), "none");
}

TEST_F(Routes, AllowsListedMethodsOnly) {
  route r;
  EXPECT_TRUE(r.allows("GET"));
  EXPECT_TRUE(r.allows("BREW"));
  r.methods = {"GET", "POST"};
  EXPECT_TRUE(r.allows("GET"));
  EXPECT_TRUE(r.allows("POST"));
  EXPECT_FALSE(r.allows("DELETE"));
  EXPECT_FALSE(r.allows("get"));
}

TEST_F(Routes, LoadsAFileAndReportsAMissingOne) {
  const std::string path =
      ::testing::TempDir() + "routes_test_" + std::to_string(::getpid()) + ".yaml";
  {
    std::ofstream out{path};
    out << one_route("data", "/api/v1/data/", "http://127.0.0.1:8081");
  }
  auto loaded = load_routes(path);
  std::remove(path.c_str());
  ASSERT_TRUE(std::holds_alternative<std::shared_ptr<const route_table>>(loaded));
  EXPECT_EQ(std::get<std::shared_ptr<const route_table>>(loaded)->routes().front().name, "data");

  auto missing = load_routes(path);
  ASSERT_TRUE(std::holds_alternative<std::vector<std::string>>(missing));
  EXPECT_THAT(std::get<std::vector<std::string>>(missing).front(),
              HasSubstr("cannot read routes file"));
}

TEST_F(Routes, HolderSwapsTablesWithoutDisturbingSnapshots) {
  route_holder holder;
  auto before = holder.current();
  ASSERT_TRUE(before);
  EXPECT_EQ(before->match("/a/x"), nullptr);
  holder.replace(accepted(one_route("a", "/a/", "http://127.0.0.1:1")));
  ASSERT_NE(holder.current()->match("/a/x"), nullptr);
  EXPECT_EQ(before->match("/a/x"), nullptr);
}

}  // namespace
}  // namespace datahub::http
