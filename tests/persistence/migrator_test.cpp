// Migration runner against a real PostgreSQL: applied once, under concurrency too, altered
// files detected, status reported.
#include "persistence/migrator.hpp"

#include <algorithm>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "tests/persistence/test_database.hpp"

namespace datahub::persistence {
namespace {

using pgtest::test_database;

class MigratorTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(db_.ok()); }

  std::vector<std::string> embedded_names() const {
    std::vector<std::string> names;
    for (const auto& m : embedded_migrations())
      names.push_back(m.name);
    return names;
  }

  test_database db_;
};

TEST_F(MigratorTest, EmbedsTheMigrationFilesInNameOrder) {
  const auto& all = embedded_migrations();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front().name, "001_initial.sql");
  EXPECT_NE(all.front().sql.find("CREATE TABLE api_keys"), std::string::npos);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(),
                             [](const auto& a, const auto& b) { return a.name < b.name; }));
}

TEST_F(MigratorTest, AppliesEachMigrationOnce) {
  const auto first = apply_migrations(db_.url());
  ASSERT_TRUE(first.ok()) << first.error().detail;
  EXPECT_EQ(first.value(), embedded_names());

  const auto second = apply_migrations(db_.url());
  ASSERT_TRUE(second.ok()) << second.error().detail;
  EXPECT_TRUE(second.value().empty());

  EXPECT_EQ(db_.scalar("SELECT count(*) FROM schema_migrations"),
            std::to_string(embedded_migrations().size()));
  EXPECT_EQ(db_.scalar("SELECT to_regclass('api_keys') IS NOT NULL"), "t");
  EXPECT_EQ(db_.scalar("SELECT to_regclass('events') IS NOT NULL"), "t");
  EXPECT_EQ(db_.scalar("SELECT to_regclass('api_key_usage') IS NOT NULL"), "t");
  EXPECT_EQ(db_.scalar("SELECT checksum FROM schema_migrations WHERE name = '001_initial.sql'"),
            sha256_hex(embedded_migrations().front().sql));
}

TEST_F(MigratorTest, ConcurrentRunsApplyEachMigrationOnce) {
  // The slow migration would fail with "relation already exists" if two runs applied it.
  auto sources = embedded_migrations();
  sources.push_back({"900_slow.sql", "SELECT pg_sleep(0.5); CREATE TABLE slow_marker (x int);"});

  std::vector<db_result<std::vector<std::string>>> results(
      3, db_result<std::vector<std::string>>(db_error{db_errc::failed, "not run"}));
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&, i] { results[i] = apply_migrations(db_.url(), sources); });
  for (auto& t : threads)
    t.join();

  std::multiset<std::string> applied;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.error().detail;
    applied.insert(r.value().begin(), r.value().end());
  }
  EXPECT_EQ(applied.size(), sources.size());
  for (const auto& s : sources)
    EXPECT_EQ(applied.count(s.name), 1u) << s.name;
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM schema_migrations"), std::to_string(sources.size()));
}

TEST_F(MigratorTest, RefusesMigrationAlteredAfterBeingApplied) {
  std::vector<migration_source> sources{{"001_a.sql", "CREATE TABLE a (x int);"}};
  ASSERT_TRUE(apply_migrations(db_.url(), sources).ok());

  sources[0].sql = "CREATE TABLE a (x int, y int);";
  sources.push_back({"002_b.sql", "CREATE TABLE b (x int);"});
  const auto result = apply_migrations(db_.url(), sources);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, db_errc::failed);
  EXPECT_NE(result.error().detail.find("001_a.sql"), std::string::npos) << result.error().detail;
  EXPECT_NE(result.error().detail.find("altered after being applied"), std::string::npos)
      << result.error().detail;
  EXPECT_EQ(db_.scalar("SELECT to_regclass('b') IS NULL"), "t");

  const auto status = migration_status(db_.url(), sources);
  ASSERT_TRUE(status.ok()) << status.error().detail;
  ASSERT_EQ(status.value().size(), 2u);
  EXPECT_TRUE(status.value()[0].applied);
  EXPECT_FALSE(status.value()[0].checksum_matches);
  EXPECT_FALSE(status.value()[1].applied);
}

TEST_F(MigratorTest, StatusListsPendingAppliedAndUnknownMigrations) {
  const std::vector<migration_source> one{{"001_a.sql", "CREATE TABLE a (x int);"}};
  const std::vector<migration_source> two{one[0], {"002_b.sql", "CREATE TABLE b (x int);"}};

  auto status = migration_status(db_.url(), two);
  ASSERT_TRUE(status.ok()) << status.error().detail;
  ASSERT_EQ(status.value().size(), 2u);
  EXPECT_FALSE(status.value()[0].applied);
  EXPECT_FALSE(status.value()[1].applied);

  ASSERT_TRUE(apply_migrations(db_.url(), one).ok());
  status = migration_status(db_.url(), two);
  ASSERT_TRUE(status.ok()) << status.error().detail;
  EXPECT_EQ(status.value()[0].name, "001_a.sql");
  EXPECT_TRUE(status.value()[0].applied);
  EXPECT_TRUE(status.value()[0].checksum_matches);
  EXPECT_TRUE(status.value()[0].applied_at.has_value());
  EXPECT_EQ(status.value()[1].name, "002_b.sql");
  EXPECT_FALSE(status.value()[1].applied);
  EXPECT_FALSE(status.value()[1].applied_at.has_value());

  // A newer release applied 002; this binary only knows 001.
  ASSERT_TRUE(apply_migrations(db_.url(), two).ok());
  status = migration_status(db_.url(), one);
  ASSERT_TRUE(status.ok()) << status.error().detail;
  ASSERT_EQ(status.value().size(), 2u);
  EXPECT_TRUE(status.value()[0].known);
  EXPECT_EQ(status.value()[1].name, "002_b.sql");
  EXPECT_FALSE(status.value()[1].known);
  EXPECT_TRUE(status.value()[1].applied);
  EXPECT_TRUE(apply_migrations(db_.url(), one).ok());
}

TEST_F(MigratorTest, FailedMigrationLeavesNoTrace) {
  const std::vector<migration_source> sources{
      {"001_ok.sql", "CREATE TABLE ok_table (x int);"},
      {"002_bad.sql", "CREATE TABLE half (x int); SELECT no_such_column FROM half;"},
      {"003_after.sql", "CREATE TABLE after_table (x int);"}};
  const auto result = apply_migrations(db_.url(), sources);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, db_errc::failed);
  EXPECT_NE(result.error().detail.find("002_bad.sql"), std::string::npos) << result.error().detail;
  EXPECT_EQ(db_.scalar("SELECT to_regclass('ok_table') IS NOT NULL"), "t");
  EXPECT_EQ(db_.scalar("SELECT to_regclass('half') IS NULL"), "t");
  EXPECT_EQ(db_.scalar("SELECT to_regclass('after_table') IS NULL"), "t");
  EXPECT_EQ(db_.scalar("SELECT string_agg(name, ',') FROM schema_migrations"), "001_ok.sql");
}

TEST_F(MigratorTest, SchemaCurrentOnlyAfterMigrating) {
  pqxx::connection conn(db_.url());
  EXPECT_FALSE(schema_current(conn));
  ASSERT_TRUE(apply_migrations(db_.url()).ok());
  EXPECT_TRUE(schema_current(conn));
}

TEST_F(MigratorTest, UnreachableServerIsUnavailable) {
  const auto result = apply_migrations("postgresql://postgres@127.0.0.1:1/none");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, db_errc::unavailable);
  const auto status = migration_status("postgresql://postgres@127.0.0.1:1/none");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, db_errc::unavailable);
}

TEST(MigratorChecksum, IsHexSha256OfTheContent) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace datahub::persistence
