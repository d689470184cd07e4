// Prefixed ULIDs and RFC 3339 timestamps.
#include <set>

#include <gtest/gtest.h>

#include "core/ids.hpp"
#include "core/time.hpp"

namespace datahub::core {
namespace {

TEST(Ids, NewIdIsValidAndSortsByTime) {
  const auto a = new_id("key");
  EXPECT_TRUE(is_valid_id("key", a)) << a;
  EXPECT_FALSE(is_valid_id("wh", a));
  EXPECT_FALSE(is_valid_id("key", a.substr(0, a.size() - 1)));
  EXPECT_FALSE(is_valid_id("key", "key_01H5X4Y6Z8A9B0C1D2E3F4G5HU"));  // U is not Crockford
  EXPECT_FALSE(is_valid_id("key", "key_../../etc/passwd"));
}

TEST(Ids, RequestIdsAreValidAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    const auto id = new_request_id();
    ASSERT_TRUE(is_valid_id("req", id)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 10000u);
}

TEST(Time, FormatsAndParsesRfc3339) {
  const auto t = parse_rfc3339("2024-01-15T10:30:00.123Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(to_rfc3339(*t), "2024-01-15T10:30:00.123Z");
  const auto offset = parse_rfc3339("2024-01-15T12:30:00+02:00");
  ASSERT_TRUE(offset);
  EXPECT_EQ(to_rfc3339(*offset), "2024-01-15T10:30:00.000Z");
}

TEST(Time, RefusesMalformedTimestamps) {
  for (const char* bad :
       {"", "2024-01-15", "2024-01-15 10:30:00Z", "2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
        "2024-01-15T10:30:00", "tomorrow", "2024-01-15T10:30:00.Z", "2024-01-15T10:30:00Zjunk"})
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
  EXPECT_TRUE(parse_rfc3339("2024-02-29T00:00:00Z"));
}

}  // namespace
}  // namespace datahub::core
