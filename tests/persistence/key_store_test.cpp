// api_keys through key_store against a real PostgreSQL: round trips, pagination, patches,
// idempotent revocation, change polling, the admin bootstrap, and the events written with each
// change.
#include "persistence/key_store.hpp"

#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "tests/persistence/store_fixture.hpp"

namespace datahub::persistence {
namespace {

using pgtest::await;

class KeyStoreTest : public pgtest::migrated_database_test {
 protected:
  void SetUp() override {
    migrated_database_test::SetUp();
    if (HasFatalFailure())
      return;
    pool_ = start_pool(pool_options());
    store_ = std::make_unique<key_store>(pool_, defaults_);
  }

  core::api_key insert(const core::api_key& key) {
    auto r = await<core::api_key>([&](auto cb) { store_->insert(key, cb); });
    EXPECT_TRUE(r.ok()) << r.error().detail;
    return r.ok() ? r.value() : core::api_key{};
  }

  std::optional<core::api_key> find(const std::string& id) {
    auto r = await<std::optional<core::api_key>>([&](auto cb) { store_->find_by_id(id, cb); });
    EXPECT_TRUE(r.ok()) << r.error().detail;
    return r.ok() ? r.value() : std::nullopt;
  }

  key_page list(key_list_query q) {
    auto r = await<key_page>([&](auto cb) { store_->list(q, cb); });
    EXPECT_TRUE(r.ok()) << r.error().detail;
    return r.ok() ? r.value() : key_page{};
  }

  std::optional<core::api_key> update(const std::string& id, key_patch patch) {
    auto r = await<std::optional<core::api_key>>([&](auto cb) { store_->update(id, patch, cb); });
    EXPECT_TRUE(r.ok()) << r.error().detail;
    return r.ok() ? r.value() : std::nullopt;
  }

  std::optional<core::api_key> revoke(const std::string& id) {
    auto r = await<std::optional<core::api_key>>([&](auto cb) { store_->revoke(id, cb); });
    EXPECT_TRUE(r.ok()) << r.error().detail;
    return r.ok() ? r.value() : std::nullopt;
  }

  std::string events_for(const std::string& key_id) {
    return db_.scalar("SELECT string_agg(type, ',' ORDER BY id) FROM events WHERE data->>'id' = '" +
                      key_id + "'");
  }

  static std::vector<std::string> ids(const key_page& page) {
    std::vector<std::string> out;
    for (const auto& k : page.data)
      out.push_back(k.id);
    return out;
  }

  core::rate_limit defaults_{100, 5000};
  std::unique_ptr<key_store> store_;
};

TEST_F(KeyStoreTest, InsertedKeyIsFoundByIdAndByHash) {
  auto key = make_key("billing service");
  key.limits = core::rate_limit{10, 200};
  key.metadata = {{"team", "billing"}, {"tier", 2}};
  key.scopes = {"read", "quote\"and\\slash", "write"};
  key.expires_at = core::from_unix_ms(core::to_unix_ms(core::now()) + 3600 * 1000);
  const auto before = core::now() - std::chrono::seconds(5);
  const auto stored = insert(key);

  EXPECT_EQ(stored.id, key.id);
  EXPECT_GE(stored.created_at, before);
  EXPECT_EQ(stored.created_at, stored.updated_at);

  const auto found = find(key.id);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name, "billing service");
  EXPECT_EQ(found->prefix, key.prefix);
  EXPECT_EQ(found->environment, "live");
  EXPECT_EQ(found->scopes, key.scopes);
  ASSERT_TRUE(found->limits.has_value());
  EXPECT_EQ(found->limits->per_minute, 10);
  EXPECT_EQ(found->limits->per_hour, 200);
  EXPECT_EQ(found->metadata, key.metadata);
  EXPECT_EQ(found->key_hash, key.key_hash);
  EXPECT_EQ(found->expires_at, key.expires_at);
  EXPECT_EQ(found->created_at, stored.created_at);
  EXPECT_FALSE(found->revoked_at.has_value());
  EXPECT_FALSE(found->last_used_at.has_value());

  auto by_hash =
      await<std::optional<core::api_key>>([&](auto cb) { store_->find_by_hash(key.key_hash, cb); });
  ASSERT_TRUE(by_hash.ok());
  ASSERT_TRUE(by_hash.value().has_value());
  EXPECT_EQ(by_hash.value()->id, key.id);

  EXPECT_FALSE(find(core::new_id("key")).has_value());
  auto missing = await<std::optional<core::api_key>>(
      [&](auto cb) { store_->find_by_hash(std::string(64, 'a'), cb); });
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing.value().has_value());
}

TEST_F(KeyStoreTest, InsertWritesCreatedEventInTheSameTransaction) {
  const auto stored = insert(make_key("with event"));
  EXPECT_EQ(events_for(stored.id), "key.created");
  EXPECT_EQ(
      db_.scalar("SELECT data->'rate_limit'->>'per_minute' FROM events WHERE data->>'id' = '" +
                 stored.id + "'"),
      "100");
  EXPECT_EQ(db_.scalar("SELECT left(id, 4) FROM events WHERE data->>'id' = '" + stored.id + "'"),
            "evt_");

  // A refused insert leaves neither the key nor its event.
  auto clash = make_key("same hash");
  clash.key_hash = stored.key_hash;
  auto r = await<core::api_key>([&](auto cb) { store_->insert(clash, cb); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, db_errc::conflict);
  EXPECT_FALSE(find(clash.id).has_value());
  EXPECT_EQ(events_for(clash.id), "");
}

TEST_F(KeyStoreTest, ListsNewestFirstInPages) {
  std::vector<std::string> all;
  for (int i = 0; i < 5; ++i)
    all.push_back(insert(make_key("key " + std::to_string(i))).id);
  std::sort(all.rbegin(), all.rend());

  key_list_query q;
  q.limit = 2;
  auto page = list(q);
  EXPECT_EQ(ids(page), (std::vector<std::string>{all[0], all[1]}));
  EXPECT_TRUE(page.has_more);

  q.starting_after = all[1];
  page = list(q);
  EXPECT_EQ(ids(page), (std::vector<std::string>{all[2], all[3]}));
  EXPECT_TRUE(page.has_more);

  q.starting_after = all[3];
  page = list(q);
  EXPECT_EQ(ids(page), (std::vector<std::string>{all[4]}));
  EXPECT_FALSE(page.has_more);

  key_list_query everything;
  everything.limit = 5;
  page = list(everything);
  EXPECT_EQ(ids(page), all);
  EXPECT_FALSE(page.has_more);
}

TEST_F(KeyStoreTest, ListFiltersByStatus) {
  const auto active = insert(make_key("active"));
  const auto revoked = insert(make_key("revoked"));
  auto expiring = make_key("expired");
  expiring.expires_at = core::now() - std::chrono::hours(1);
  const auto expired = insert(expiring);
  ASSERT_TRUE(revoke(revoked.id).has_value());

  key_list_query q;
  q.status = core::key_status::active;
  EXPECT_EQ(ids(list(q)), std::vector<std::string>{active.id});
  q.status = core::key_status::revoked;
  EXPECT_EQ(ids(list(q)), std::vector<std::string>{revoked.id});
  q.status = core::key_status::expired;
  EXPECT_EQ(ids(list(q)), std::vector<std::string>{expired.id});
  q.status.reset();
  EXPECT_EQ(list(q).data.size(), 3u);

  auto count = await<int64_t>([&](auto cb) { store_->count_active(cb); });
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count.value(), 1);
}

TEST_F(KeyStoreTest, UpdateChangesOnlyPatchedFieldsAndWritesEvent) {
  auto key = make_key("before");
  key.limits = core::rate_limit{5, 50};
  key.metadata = {{"keep", true}};
  const auto stored = insert(key);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));

  key_patch patch;
  patch.name = "after";
  patch.limits = std::optional<core::rate_limit>{};  // back to the defaults
  patch.expires_at = std::optional<core::timestamp>{core::from_unix_ms(4102444800000)};
  const auto updated = update(stored.id, patch);
  ASSERT_TRUE(updated.has_value());
  EXPECT_EQ(updated->name, "after");
  EXPECT_FALSE(updated->limits.has_value());
  EXPECT_EQ(updated->expires_at, core::from_unix_ms(4102444800000));
  EXPECT_EQ(updated->scopes, stored.scopes);
  EXPECT_EQ(updated->metadata, stored.metadata);
  EXPECT_EQ(updated->created_at, stored.created_at);
  EXPECT_GT(updated->updated_at, stored.updated_at);
  EXPECT_EQ(events_for(stored.id), "key.created,key.updated");
  EXPECT_EQ(db_.scalar("SELECT data->>'name' FROM events WHERE type = 'key.updated'"), "after");

  key_patch second;
  second.scopes = std::vector<std::string>{"admin"};
  second.metadata = nlohmann::json{{"new", 1}};
  second.expires_at = std::optional<core::timestamp>{};  // cleared
  second.limits = core::rate_limit{7, 70};
  const auto again = update(stored.id, second);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->name, "after");
  EXPECT_EQ(again->scopes, std::vector<std::string>{"admin"});
  EXPECT_EQ(again->metadata, (nlohmann::json{{"new", 1}}));
  EXPECT_FALSE(again->expires_at.has_value());
  ASSERT_TRUE(again->limits.has_value());
  EXPECT_EQ(again->limits->per_hour, 70);
  EXPECT_EQ(find(stored.id)->name, "after");

  EXPECT_FALSE(update(core::new_id("key"), patch).has_value());
}

TEST_F(KeyStoreTest, RevokeIsIdempotentAndWritesOneEvent) {
  const auto stored = insert(make_key("to revoke"));
  const auto first = revoke(stored.id);
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->revoked_at.has_value());
  EXPECT_EQ(first->status_at(core::now()), core::key_status::revoked);
  EXPECT_EQ(first->updated_at, *first->revoked_at);

  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto second = revoke(stored.id);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->revoked_at, first->revoked_at);
  EXPECT_EQ(second->updated_at, first->updated_at);
  EXPECT_EQ(events_for(stored.id), "key.created,key.revoked");
  EXPECT_EQ(db_.scalar("SELECT data->>'status' FROM events WHERE type = 'key.revoked'"), "revoked");

  EXPECT_FALSE(revoke(core::new_id("key")).has_value());
}

TEST_F(KeyStoreTest, ChangedSinceReturnsKeysUpdatedAtOrAfter) {
  const auto a = insert(make_key("a"));
  const auto b = insert(make_key("b"));
  const auto since = std::max(a.updated_at, b.updated_at) + std::chrono::milliseconds(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto revoked = revoke(a.id);
  ASSERT_TRUE(revoked.has_value());

  auto changed =
      await<std::vector<core::api_key>>([&](auto cb) { store_->changed_since(since, cb); });
  ASSERT_TRUE(changed.ok()) << changed.error().detail;
  ASSERT_EQ(changed.value().size(), 1u);
  EXPECT_EQ(changed.value()[0].id, a.id);
  EXPECT_TRUE(changed.value()[0].revoked_at.has_value());

  // The bound is inclusive.
  changed = await<std::vector<core::api_key>>(
      [&](auto cb) { store_->changed_since(revoked->updated_at, cb); });
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(changed.value().size(), 1u);

  changed = await<std::vector<core::api_key>>(
      [&](auto cb) { store_->changed_since(core::from_unix_ms(0), cb); });
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(changed.value().size(), 2u);
}

TEST_F(KeyStoreTest, EnsureAdminKeyCreatesThenRepairs) {
  const std::string hash(64, 'f');
  auto ensure = [&] {
    auto r = await<core::api_key>(
        [&](auto cb) { store_->ensure_admin_key(hash, "dh_live_abcd", "live", cb); });
    EXPECT_TRUE(r.ok()) << r.error().detail;
    return r.ok() ? r.value() : core::api_key{};
  };

  const auto created = ensure();
  EXPECT_EQ(created.name, "bootstrap admin");
  EXPECT_EQ(created.scopes, std::vector<std::string>{"admin"});
  EXPECT_EQ(created.key_hash, hash);
  EXPECT_EQ(created.status_at(core::now()), core::key_status::active);
  EXPECT_EQ(events_for(created.id), "key.created");

  // Already fine: left untouched, no event.
  const auto same = ensure();
  EXPECT_EQ(same.id, created.id);
  EXPECT_EQ(same.updated_at, created.updated_at);
  EXPECT_EQ(events_for(created.id), "key.created");

  ASSERT_TRUE(revoke(created.id).has_value());
  key_patch patch;
  patch.scopes = std::vector<std::string>{"keys:read"};
  patch.expires_at = std::optional<core::timestamp>{core::now() - std::chrono::hours(1)};
  ASSERT_TRUE(update(created.id, patch).has_value());

  const auto repaired = ensure();
  EXPECT_EQ(repaired.id, created.id);
  EXPECT_FALSE(repaired.revoked_at.has_value());
  EXPECT_FALSE(repaired.expires_at.has_value());
  EXPECT_EQ(repaired.scopes, (std::vector<std::string>{"keys:read", "admin"}));
  EXPECT_EQ(repaired.status_at(core::now()), core::key_status::active);
  EXPECT_EQ(events_for(created.id), "key.created,key.revoked,key.updated,key.updated");
}

TEST_F(KeyStoreTest, ConcurrentAdminBootstrapsCreateOneKey) {
  const std::string hash(64, 'e');
  std::vector<db_result<core::api_key>> results(
      4, db_result<core::api_key>(db_error{db_errc::failed, "not run"}));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i)
    threads.emplace_back([&, i] {
      results[i] = await<core::api_key>(
          [&](auto cb) { store_->ensure_admin_key(hash, "dh_live_abcd", "live", cb); });
    });
  for (auto& t : threads)
    t.join();
  std::set<std::string> ids;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.error().detail;
    ids.insert(r.value().id);
  }
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM api_keys"), "1");
}

}  // namespace
}  // namespace datahub::persistence
