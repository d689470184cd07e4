// A migrated test database with a running db_pool, shared by the store and pool suites.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "core/api_key.hpp"
#include "core/ids.hpp"
#include "core/metrics.hpp"
#include "core/secrets.hpp"
#include "persistence/db_pool.hpp"
#include "persistence/migrator.hpp"
#include "tests/persistence/test_database.hpp"

namespace datahub::persistence::pgtest {

class migrated_database_test : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(db_.ok());
    const auto applied = apply_migrations(db_.url());
    ASSERT_TRUE(applied.ok()) << applied.error().detail;
  }

  void TearDown() override {
    if (pool_)
      pool_->stop();
  }

  std::shared_ptr<db_pool> start_pool(db_pool::options opts) {
    return db_pool::start(sys_, std::move(opts), metrics_);
  }

  db_pool::options pool_options(int size = 2) const {
    db_pool::options opts;
    opts.url = db_.url();
    opts.size = size;
    opts.queue_max = 100;
    opts.timeout = std::chrono::milliseconds(5000);
    return opts;
  }

  /// A well-formed key that is not stored yet.
  static core::api_key make_key(const std::string& name) {
    const auto secret = core::generate_secret(core::key_environment::live);
    core::api_key key;
    key.id = core::new_id("key");
    key.name = name;
    key.prefix = core::display_prefix(secret);
    key.environment = "live";
    key.scopes = {"read", "write"};
    key.key_hash = core::hash_secret("test-salt", secret);
    return key;
  }

  test_database db_;
  caf::actor_system_config cfg_;
  caf::actor_system sys_{cfg_};
  core::metrics metrics_;
  std::shared_ptr<db_pool> pool_;
};

}  // namespace datahub::persistence::pgtest
