// Admin API input validation: every refused body, field and query parameter, with the exact
// status, code and param the client sees.
#include "http/admin_validation.hpp"

#include <string>

#include <gtest/gtest.h>

#include "config/settings.hpp"
#include "core/ids.hpp"

namespace datahub::http {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class AdminValidation : public ::testing::Test {
 protected:
  AdminValidation() { settings_.default_limits = core::rate_limit{100, 5000}; }

  /// A body through the same two steps as a real POST: parse, then validate.
  validated<create_key_request> create(std::string_view body) const {
    auto parsed = parse_json_object(body);
    if (!parsed)
      return parsed.error();
    return validate_create(*parsed, settings_, now_);
  }

  validated<patch_key_request> patch(std::string_view body) const {
    auto parsed = parse_json_object(body);
    if (!parsed)
      return parsed.error();
    return validate_patch(*parsed, now_);
  }

  /// A create body holding `name` plus `extra` members (`"k": v, ...`).
  static std::string with_name(const std::string& extra) {
    return extra.empty() ? R"({"name":"ci"})" : R"({"name":"ci",)" + extra + "}";
  }

  config::settings settings_;
  const core::timestamp now_ = *core::parse_rfc3339("2025-06-01T12:00:00Z");
};

/// Asserts `result` is refused with `code` (and its HTTP status) and the given param.
template <class T>
void expect_refused(const validated<T>& result, api_errc code,
                    const std::optional<std::string>& param) {
  ASSERT_FALSE(result.ok()) << "accepted, expected " << to_string(code) << " "
                            << param.value_or("(no param)");
  EXPECT_EQ(to_string(result.error().code), to_string(code)) << result.error().message;
  EXPECT_EQ(status_of(result.error().code),
            code == api_errc::invalid_request || code == api_errc::validation_error
                ? boost::beast::http::status::bad_request
                : status_of(code));
  EXPECT_EQ(result.error().param, param) << result.error().message;
  EXPECT_FALSE(result.error().message.empty());
}

void expect_validation_error(const validated<create_key_request>& result,
                             const std::string& param) {
  expect_refused(result, api_errc::validation_error, param);
}

// --- bodies ---

TEST_F(AdminValidation, RefusesMalformedJsonAsInvalidRequest) {
  for (const char* body : {R"({"name":)", "not json", R"({"name":"a",})", "{'name':'a'}", "  ",
                           R"({"name":"a"} trailing)"})
    expect_refused(create(body), api_errc::invalid_request, std::nullopt);
}

TEST_F(AdminValidation, RefusesJsonThatIsNotAnObject) {
  for (const char* body : {R"([{"name":"a"}])", R"("name")", "42", "null", "true"})
    expect_refused(create(body), api_errc::invalid_request, std::nullopt);
  expect_refused(patch("[]"), api_errc::invalid_request, std::nullopt);
}

TEST_F(AdminValidation, RefusesInvalidUtf8WithoutThrowing) {
  const std::string bodies[] = {
      "{\"name\":\"\xff\"}",              // never valid
      "{\"name\":\"\xc0\xaf\"}",          // overlong '/'
      "{\"name\":\"\xed\xa0\x80\"}",      // UTF-16 surrogate
      "{\"name\":\"\xe2\x82\"}",          // truncated sequence
      "{\"name\":\"a\"}\x80",             // stray continuation byte outside a string
      "{\"name\":\"\xf4\x90\x80\x80\"}",  // above U+10FFFF
  };
  for (const auto& body : bodies) {
    EXPECT_NO_THROW(expect_refused(create(body), api_errc::invalid_request, std::nullopt));
  }
  EXPECT_TRUE(create("{\"name\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91\"}").ok());
}

TEST_F(AdminValidation, RefusesUnpairedSurrogateEscape) {
  expect_refused(create(R"({"name":"\ud800"})"), api_errc::invalid_request, std::nullopt);
}

TEST_F(AdminValidation, RefusesDeeplyNestedBody) {
  const std::string deep =
      R"({"name":"a","metadata":{"x":)" + std::string(100, '[') + std::string(100, ']') + "}}";
  expect_refused(create(deep), api_errc::invalid_request, std::nullopt);
  // Brackets inside strings are text, not nesting.
  EXPECT_TRUE(create(R"({"name":")" + std::string(100, '[') + R"("})").ok());
}

TEST_F(AdminValidation, EmptyBodyIsAnEmptyObject) {
  expect_validation_error(create(""), "name");
  const auto p = patch("");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->empty());
}

// --- create ---

TEST_F(AdminValidation, AcceptsFullCreateBody) {
  const auto r = create(R"({"name":"  billing service ","scopes":["read:data","write","read:data"],
    "rate_limit":{"per_minute":10,"per_hour":600},"expires_at":"2030-01-01T00:00:00+02:00",
    "metadata":{"team":"billing","tier":3},"environment":"test"})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->name, "billing service");
  EXPECT_EQ(r->scopes, (std::vector<std::string>{"read:data", "write"}));
  ASSERT_TRUE(r->limits);
  EXPECT_EQ(r->limits->per_minute, 10);
  EXPECT_EQ(r->limits->per_hour, 600);
  ASSERT_TRUE(r->expires_at);
  EXPECT_EQ(core::to_rfc3339(*r->expires_at), "2029-12-31T22:00:00.000Z");
  EXPECT_EQ(r->metadata, json({{"team", "billing"}, {"tier", 3}}));
  EXPECT_EQ(r->environment, core::key_environment::test);
}

TEST_F(AdminValidation, MinimalCreateFollowsDefaults) {
  const auto r = create(R"({"name":"ci"})");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->scopes.empty());
  EXPECT_FALSE(r->limits) << "a key without rate_limit follows the configured defaults";
  EXPECT_FALSE(r->expires_at);
  EXPECT_EQ(r->metadata, json::object());
  EXPECT_EQ(r->environment, core::key_environment::live);
  EXPECT_FALSE(create(with_name(R"("rate_limit":null)"))->limits);
  EXPECT_FALSE(create(with_name(R"("expires_at":null)"))->expires_at);
}

TEST_F(AdminValidation, RefusesUnknownFieldsNamingThem) {
  expect_validation_error(create(R"({"name":"a","colour":"red"})"), "colour");
  expect_validation_error(create(R"({"name":"a","secret":"dh_live_x"})"), "secret");
  expect_validation_error(create(with_name(R"("rate_limit":{"per_minute":1,"per_day":5})")),
                          "rate_limit.per_day");
}

TEST_F(AdminValidation, RefusesMissingEmptyBlankOrLongName) {
  expect_validation_error(create("{}"), "name");
  expect_validation_error(create(R"({"scopes":["a"]})"), "name");
  expect_validation_error(create(R"({"name":""})"), "name");
  expect_validation_error(create(R"({"name":"   \t "})"), "name");
  expect_validation_error(create(R"({"name":null})"), "name");
  expect_validation_error(create(R"({"name":42})"), "name");
  expect_validation_error(create(R"({"name":["a"]})"), "name");
  expect_validation_error(create(R"({"name":"a\u0000b"})"), "name");
  expect_validation_error(create(R"({"name":"line\nbreak"})"), "name");
  expect_validation_error(create(R"({"name":")" + std::string(201, 'n') + R"("})"), "name");
}

TEST_F(AdminValidation, NameLimitCountsCharactersNotBytes) {
  EXPECT_TRUE(create(R"({"name":")" + std::string(200, 'n') + R"("})").ok());
  std::string accented;
  for (int i = 0; i < 200; ++i)
    accented += "\xc3\xa9";  // é: two bytes, one character
  EXPECT_TRUE(create(R"({"name":")" + accented + R"("})").ok());
  expect_validation_error(create(R"({"name":")" + accented + "\xc3\xa9" + R"("})"), "name");
}

TEST_F(AdminValidation, RefusesRateLimitsThatAreNotPositiveIntegersInRange) {
  const char* bad[] = {"-1",
                       "0",
                       "-0",
                       "1.5",
                       "1.0",
                       "1e3",
                       "\"10\"",
                       "true",
                       "null",
                       "[]",
                       "{}",
                       "9223372036854775808",
                       "18446744073709551615",
                       "18446744073709551616",
                       "1e30",
                       "-9223372036854775808",
                       "1000000001"};
  for (const char* v : bad) {
    SCOPED_TRACE(v);
    expect_validation_error(
        create(with_name(std::string{R"("rate_limit":{"per_minute":)"} + v + R"(,"per_hour":10})")),
        "rate_limit.per_minute");
    expect_validation_error(
        create(with_name(std::string{R"("rate_limit":{"per_minute":1,"per_hour":)"} + v + "}")),
        "rate_limit.per_hour");
  }
  const auto top =
      create(with_name(R"("rate_limit":{"per_minute":1000000000,"per_hour":1000000000})"));
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(top->limits->per_minute, 1000000000);
}

TEST_F(AdminValidation, RefusesRateLimitThatIsNotAnObject) {
  for (const char* v : {"5", "\"fast\"", "[100,5000]", "true"})
    expect_validation_error(create(with_name(std::string{R"("rate_limit":)"} + v)), "rate_limit");
}

TEST_F(AdminValidation, RefusesHourLimitBelowMinuteLimit) {
  expect_validation_error(create(with_name(R"("rate_limit":{"per_minute":100,"per_hour":99})")),
                          "rate_limit.per_hour");
  EXPECT_TRUE(create(with_name(R"("rate_limit":{"per_minute":100,"per_hour":100})")).ok());
}

TEST_F(AdminValidation, PartialRateLimitIsCompletedFromDefaults) {
  const auto minute_only = create(with_name(R"("rate_limit":{"per_minute":7})"));
  ASSERT_TRUE(minute_only.ok());
  EXPECT_EQ(minute_only->limits->per_minute, 7);
  EXPECT_EQ(minute_only->limits->per_hour, 5000);

  const auto empty = create(with_name(R"("rate_limit":{})"));
  ASSERT_TRUE(empty.ok());
  ASSERT_TRUE(empty->limits) << "given rate_limit: the key keeps its own limits";
  EXPECT_EQ(empty->limits->per_minute, 100);

  // The order rule covers a pair given together only: a partial limit is taken as given, so
  // "3 per hour" can be set on its own while the minute keeps the default.
  const auto hour_only = create(with_name(R"("rate_limit":{"per_hour":3})"));
  ASSERT_TRUE(hour_only.ok());
  EXPECT_EQ(hour_only->limits->per_minute, 100);
  EXPECT_EQ(hour_only->limits->per_hour, 3);
  const auto big_minute = create(with_name(R"("rate_limit":{"per_minute":6000})"));
  ASSERT_TRUE(big_minute.ok());
  EXPECT_EQ(big_minute->limits->per_hour, 5000);
}

TEST_F(AdminValidation, RefusesExpiryNotRfc3339OrNotInTheFuture) {
  const char* bad[] = {R"("tomorrow")",
                       R"("2030-01-01")",
                       R"("2030-01-01 00:00:00Z")",
                       R"("2030-13-01T00:00:00Z")",
                       R"("2030-02-30T00:00:00Z")",
                       R"("2030-01-01T00:00:00")",
                       R"("1893456000")",
                       "1893456000",
                       "true",
                       R"({"at":"2030-01-01T00:00:00Z"})",
                       R"("2020-01-01T00:00:00Z")",
                       R"("2025-06-01T12:00:00Z")",       // exactly now
                       R"("2025-06-01T13:00:00+02:00")",  // an hour ago
                       R"("9999-12-31T23:59:59Z")",
                       R"("2200-01-01T00:00:00Z")"};
  for (const char* v : bad) {
    SCOPED_TRACE(v);
    expect_validation_error(create(with_name(std::string{R"("expires_at":)"} + v)), "expires_at");
  }
  EXPECT_TRUE(create(with_name(R"("expires_at":"2025-06-01T12:00:00.001Z")")).ok());
  EXPECT_TRUE(create(with_name(R"("expires_at":"2199-12-31T23:59:59Z")")).ok());
}

TEST_F(AdminValidation, RefusesMetadataNotAnObjectOrTooLarge) {
  for (const char* v : {"[]", "\"x\"", "5", "null", "true"})
    expect_validation_error(create(with_name(std::string{R"("metadata":)"} + v)), "metadata");

  // {"k":"vvv..."} serialises to 8 bytes plus the value.
  const auto sized = [](size_t total) {
    return R"("metadata":{"k":")" + std::string(total - 8, 'v') + R"("})";
  };
  EXPECT_TRUE(create(with_name(sized(4096))).ok());
  expect_validation_error(create(with_name(sized(4097))), "metadata");
}

TEST_F(AdminValidation, RefusesMetadataThePostgresJsonTypeCannotHold) {
  expect_validation_error(create(with_name(R"("metadata":{"k":"a\u0000b"})")), "metadata");
  expect_validation_error(create(with_name(R"("metadata":{"a\u0000":1})")), "metadata");
  expect_validation_error(create(with_name(R"("metadata":{"deep":[{"x":"\u0000"}]})")), "metadata");
}

TEST_F(AdminValidation, RefusesBadScopes) {
  const char* bad[] = {R"("read")",        R"({"read":true})", R"(["Read"])", R"(["read data"])",
                       R"(["read/data"])", R"([""])",          R"(["ok",5])", R"(["ok",null])",
                       R"(["caf\u00e9"])", R"(["a\u0000"])"};
  for (const char* v : bad) {
    SCOPED_TRACE(v);
    expect_validation_error(create(with_name(std::string{R"("scopes":)"} + v)), "scopes");
  }
  expect_validation_error(create(with_name(R"("scopes":[")" + std::string(65, 's') + R"("])")),
                          "scopes");
  EXPECT_TRUE(create(with_name(R"("scopes":[")" + std::string(64, 's') + R"("])")).ok());
  EXPECT_TRUE(create(with_name(R"("scopes":["a-z0.9:_x"])")).ok());
}

TEST_F(AdminValidation, AllowsAtMostFiftyDistinctScopes) {
  const auto scopes = [](int distinct, int copies) {
    std::string list;
    for (int c = 0; c < copies; ++c)
      for (int i = 0; i < distinct; ++i)
        list += (list.empty() ? "\"s" : ",\"s") + std::to_string(i) + "\"";
    return R"("scopes":[)" + list + "]";
  };
  EXPECT_TRUE(create(with_name(scopes(50, 1))).ok());
  expect_validation_error(create(with_name(scopes(51, 1))), "scopes");
  const auto deduplicated = create(with_name(scopes(2, 30)));
  ASSERT_TRUE(deduplicated.ok());
  EXPECT_EQ(deduplicated->scopes, (std::vector<std::string>{"s0", "s1"}));
}

TEST_F(AdminValidation, RefusesUnknownEnvironment) {
  for (const char* v : {R"("prod")", R"("LIVE")", R"("")", "1", "null"})
    expect_validation_error(create(with_name(std::string{R"("environment":)"} + v)), "environment");
}

// --- patch ---

TEST_F(AdminValidation, PatchRefusesFieldsThatCannotChange) {
  for (const char* field : {"environment", "secret", "id", "prefix", "status", "created_at"}) {
    SCOPED_TRACE(field);
    expect_refused(patch(std::string{"{\""} + field + R"(":"x"})"), api_errc::validation_error,
                   field);
  }
  expect_refused(patch(R"({"colour":"red"})"), api_errc::validation_error, "colour");
  expect_refused(patch(R"({"rate_limit":{"burst":3}})"), api_errc::validation_error,
                 "rate_limit.burst");
}

TEST_F(AdminValidation, PatchValidatesFieldsLikeCreate) {
  expect_refused(patch(R"({"name":""})"), api_errc::validation_error, "name");
  expect_refused(patch(R"({"name":null})"), api_errc::validation_error, "name");
  expect_refused(patch(R"({"scopes":["A"]})"), api_errc::validation_error, "scopes");
  expect_refused(patch(R"({"rate_limit":{"per_minute":0}})"), api_errc::validation_error,
                 "rate_limit.per_minute");
  expect_refused(patch(R"({"rate_limit":{"per_minute":10,"per_hour":9}})"),
                 api_errc::validation_error, "rate_limit.per_hour");
  expect_refused(patch(R"({"metadata":null})"), api_errc::validation_error, "metadata");
  expect_refused(patch(R"({"expires_at":"2001-01-01T00:00:00Z"})"), api_errc::validation_error,
                 "expires_at");
}

TEST_F(AdminValidation, PatchNullsResetLimitsAndClearExpiry) {
  const auto p = patch(R"({"rate_limit":null,"expires_at":null})");
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->limits);
  EXPECT_FALSE(*p->limits);
  ASSERT_TRUE(p->expires_at);
  EXPECT_FALSE(*p->expires_at);
  EXPECT_FALSE(p->needs_current_limits());

  const auto resolved = resolve_patch(*p, std::nullopt, settings_.default_limits);
  ASSERT_TRUE(resolved.ok());
  ASSERT_TRUE(resolved->limits);
  EXPECT_FALSE(*resolved->limits);
  ASSERT_TRUE(resolved->expires_at);
  EXPECT_FALSE(*resolved->expires_at);
  EXPECT_FALSE(resolved->name);
}

TEST_F(AdminValidation, PatchMergesPartialLimitsWithTheKeysCurrentLimits) {
  const core::rate_limit current{10, 100};
  const auto minute = patch(R"({"rate_limit":{"per_minute":50}})");
  ASSERT_TRUE(minute.ok());
  EXPECT_TRUE(minute->needs_current_limits());
  const auto merged = resolve_patch(*minute, current, settings_.default_limits);
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ((*merged->limits)->per_minute, 50);
  EXPECT_EQ((*merged->limits)->per_hour, 100);

  // A partial change is taken as given against the current other half...
  const auto hour_below =
      resolve_patch(*patch(R"({"rate_limit":{"per_hour":9}})"), current, settings_.default_limits);
  ASSERT_TRUE(hour_below.ok());
  EXPECT_EQ((*hour_below->limits)->per_minute, 10);
  EXPECT_EQ((*hour_below->limits)->per_hour, 9);
  // ...while a pair given together must be ordered.
  expect_refused(patch(R"({"rate_limit":{"per_minute":101,"per_hour":100}})"),
                 api_errc::validation_error, "rate_limit.per_hour");

  // A key without limits of its own merges with the defaults (100/5000).
  const auto hour = resolve_patch(*patch(R"({"rate_limit":{"per_hour":200}})"), std::nullopt,
                                  settings_.default_limits);
  ASSERT_TRUE(hour.ok());
  EXPECT_EQ((*hour->limits)->per_minute, 100);
  EXPECT_EQ((*hour->limits)->per_hour, 200);
}

TEST_F(AdminValidation, PatchCarriesEveryGivenField) {
  const auto p = patch(R"({"name":"renamed","scopes":["x","x"],"metadata":{"a":1},
    "expires_at":"2026-01-01T00:00:00Z","rate_limit":{"per_minute":1,"per_hour":2}})");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_FALSE(p->empty());
  EXPECT_FALSE(p->needs_current_limits());
  const auto resolved = resolve_patch(*p, std::nullopt, settings_.default_limits);
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->name, "renamed");
  EXPECT_EQ(resolved->scopes, (std::vector<std::string>{"x"}));
  EXPECT_EQ(resolved->metadata, json({{"a", 1}}));
  EXPECT_EQ(core::to_rfc3339(**resolved->expires_at), "2026-01-01T00:00:00.000Z");
  EXPECT_EQ((*resolved->limits)->per_hour, 2);
}

// --- Content-Type ---

TEST_F(AdminValidation, AcceptsOnlyJsonContentType) {
  EXPECT_TRUE(is_json_content_type("application/json"));
  EXPECT_TRUE(is_json_content_type("Application/JSON"));
  EXPECT_TRUE(is_json_content_type("application/json; charset=utf-8"));
  EXPECT_TRUE(is_json_content_type("application/json;charset=\"UTF-8\""));
  EXPECT_TRUE(is_json_content_type(" application/json ; foo=bar"));
  EXPECT_FALSE(is_json_content_type(""));
  EXPECT_FALSE(is_json_content_type("text/plain"));
  EXPECT_FALSE(is_json_content_type("application/jsonx"));
  EXPECT_FALSE(is_json_content_type("application/x-www-form-urlencoded"));
  EXPECT_FALSE(is_json_content_type("multipart/form-data; boundary=x"));
  EXPECT_FALSE(is_json_content_type("application/json; charset=latin1"));
}

// --- list query ---

TEST_F(AdminValidation, ListQueryDefaults) {
  const auto q = parse_list_query("");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->limit, 20);
  EXPECT_FALSE(q->starting_after);
  EXPECT_FALSE(q->status);
}

TEST_F(AdminValidation, ListQueryAcceptsEveryParameter) {
  const auto id = core::new_id("key");
  const auto q = parse_list_query("limit=100&status=revoked&starting_after=" + id);
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_EQ(q->limit, 100);
  EXPECT_EQ(q->status, core::key_status::revoked);
  EXPECT_EQ(q->starting_after, id);
  // Values are percent-decoded.
  const auto encoded = parse_list_query("limit=%31&starting_after=key%5F" + id.substr(4));
  ASSERT_TRUE(encoded.ok());
  EXPECT_EQ(encoded->limit, 1);
  EXPECT_EQ(encoded->starting_after, id);
}

TEST_F(AdminValidation, ListQueryRefusesLimitOutOfRangeOrNotAnInteger) {
  for (const char* q :
       {"limit=0", "limit=101", "limit=abc", "limit=-1", "limit=1.5", "limit=", "limit", "limit=+5",
        "limit=1e2", "limit=99999999999999999999", "limit=%20"}) {
    SCOPED_TRACE(q);
    expect_refused(parse_list_query(q), api_errc::validation_error, "limit");
  }
}

TEST_F(AdminValidation, ListQueryRefusesMalformedStartingAfter) {
  const auto id = core::new_id("key");
  for (const std::string& q :
       {std::string{"starting_after=bogus"}, std::string{"starting_after="},
        "starting_after=" + core::new_id("wh"), "starting_after=key_" + id.substr(4, 25),
        "starting_after=" + id + "0", "starting_after=KEY_" + id.substr(4)}) {
    SCOPED_TRACE(q);
    expect_refused(parse_list_query(q), api_errc::validation_error, "starting_after");
  }
}

TEST_F(AdminValidation, ListQueryRefusesUnknownStatusParamsAndRepeats) {
  expect_refused(parse_list_query("status=deleted"), api_errc::validation_error, "status");
  expect_refused(parse_list_query("status=Active"), api_errc::validation_error, "status");
  expect_refused(parse_list_query("limit=5&foo=1"), api_errc::validation_error, "foo");
  expect_refused(parse_list_query("page%20size=1"), api_errc::validation_error, "page size");
  expect_refused(parse_list_query("limit=5&limit=6"), api_errc::validation_error, "limit");
  expect_refused(parse_list_query("status=active&status=revoked"), api_errc::validation_error,
                 "status");
}

TEST_F(AdminValidation, ListQueryRefusesMalformedEscapes) {
  for (const char* q : {"limit=%zz", "limit=%2", "limit=5%", "%ff=1", "status=%c3%28"}) {
    SCOPED_TRACE(q);
    expect_refused(parse_list_query(q), api_errc::invalid_request, std::nullopt);
  }
}

TEST_F(AdminValidation, PercentDecodeHandlesPlusAndEscapes) {
  EXPECT_EQ(percent_decode("a+b%2Fc%2fd"), "a b/c/d");
  EXPECT_FALSE(percent_decode("%"));
  EXPECT_FALSE(percent_decode("%g0"));
}

}  // namespace
}  // namespace datahub::http
