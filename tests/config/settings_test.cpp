// Configuration loading: defaults, every problem reported, production rules.
#include "config/settings.hpp"

#include <map>

#include <gtest/gtest.h>

#include "core/secrets.hpp"

namespace datahub::config {
namespace {

env_lookup from(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>{it->second};
  };
}

bool mentions(const std::vector<std::string>& errors, const std::string& what) {
  for (const auto& e : errors)
    if (e.find(what) != std::string::npos)
      return true;
  return false;
}

TEST(Settings, AppliesTheSeedDefaults) {
  auto r = load_settings(from({{"DATABASE_URL", "postgresql://x"}, {"API_KEY_SALT", "s"}}));
  ASSERT_TRUE(r.value) << r.errors.front();
  EXPECT_EQ(r.value->port, 3000);
  EXPECT_EQ(r.value->default_limits.per_minute, 100);
  EXPECT_EQ(r.value->default_limits.per_hour, 5000);
  EXPECT_EQ(r.value->webhook_timeout.count(), 30000);
  EXPECT_EQ(r.value->webhook_max_retries, 5);
  EXPECT_EQ(r.value->max_body_bytes, 10u * 1024 * 1024);
  EXPECT_FALSE(r.value->redis_url);
}

TEST(Settings, ReportsEveryMissingRequiredVariable) {
  auto r = load_settings(from({}));
  EXPECT_FALSE(r.value);
  EXPECT_TRUE(mentions(r.errors, "DATABASE_URL"));
  EXPECT_TRUE(mentions(r.errors, "API_KEY_SALT"));
}

TEST(Settings, RefusesWeakSaltInProduction) {
  auto placeholder = load_settings(from({{"DATABASE_URL", "postgresql://x"},
                                         {"DATAHUB_ENV", "production"},
                                         {"API_KEY_SALT", "your-secret-salt-here"}}));
  EXPECT_TRUE(mentions(placeholder.errors, "API_KEY_SALT"));
  auto short_salt = load_settings(from(
      {{"DATABASE_URL", "postgresql://x"}, {"DATAHUB_ENV", "production"}, {"API_KEY_SALT", "x"}}));
  EXPECT_TRUE(mentions(short_salt.errors, "API_KEY_SALT"));
  auto good = load_settings(from({{"DATABASE_URL", "postgresql://x"},
                                  {"DATAHUB_ENV", "production"},
                                  {"API_KEY_SALT", std::string(40, 'k')}}));
  EXPECT_TRUE(good.value);
}

TEST(Settings, RefusesMalformedNumbersAndEnums) {
  auto r = load_settings(from({{"DATABASE_URL", "postgresql://x"},
                               {"API_KEY_SALT", "s"},
                               {"PORT", "70000"},
                               {"WEBHOOK_MAX_RETRIES", "five"},
                               {"LOG_FORMAT", "xml"},
                               {"DEFAULT_RATE_LIMIT_MINUTE", "-1"}}));
  EXPECT_FALSE(r.value);
  EXPECT_TRUE(mentions(r.errors, "PORT"));
  EXPECT_TRUE(mentions(r.errors, "WEBHOOK_MAX_RETRIES"));
  EXPECT_TRUE(mentions(r.errors, "LOG_FORMAT"));
  EXPECT_TRUE(mentions(r.errors, "DEFAULT_RATE_LIMIT_MINUTE"));
}

TEST(Settings, AdminKeyMustBeWellFormed) {
  auto seed_example = load_settings(from({{"DATABASE_URL", "postgresql://x"},
                                          {"API_KEY_SALT", "s"},
                                          {"ADMIN_API_KEY", "dh_live_initial_admin_key"}}));
  ASSERT_FALSE(seed_example.value);
  EXPECT_TRUE(mentions(seed_example.errors, "datahub keys generate"));
  auto good =
      load_settings(from({{"DATABASE_URL", "postgresql://x"},
                          {"API_KEY_SALT", "s"},
                          {"ADMIN_API_KEY", core::generate_secret(core::key_environment::live)}}));
  EXPECT_TRUE(good.value);
}

}  // namespace
}  // namespace datahub::config
