// Asynchronous access to the api_keys table (and the events written with key changes).
//
// Every call returns at once; `done` runs later on a database thread, never on the caller's
// thread, so a caller on an I/O thread posts the result back to its own executor. Every write
// is committed before `done` sees success.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/api_key.hpp"
#include "persistence/db_result.hpp"

namespace datahub::persistence {

class db_pool;

struct key_list_query {
  int limit = 20;                             ///< 1..100
  std::optional<std::string> starting_after;  ///< an id: the page starts after it
  std::optional<core::key_status> status;     ///< filter
};

struct key_page {
  std::vector<core::api_key> data;
  bool has_more = false;
};

/// Fields a PATCH may change; an absent optional leaves the field as it is. For the fields that
/// may be cleared, the inner optional is empty to clear (`"expires_at": null`).
struct key_patch {
  std::optional<std::string> name;
  std::optional<std::vector<std::string>> scopes;
  std::optional<std::optional<core::rate_limit>> limits;
  std::optional<nlohmann::json> metadata;
  std::optional<std::optional<core::timestamp>> expires_at;
};

class key_store {
 public:
  template <class T>
  using callback = std::function<void(db_result<T>)>;

  /// `defaults` fills the `rate_limit` of the key objects written into events.
  key_store(std::shared_ptr<db_pool> pool, core::rate_limit defaults);

  /// Inserts a new key (id, hash and prefix already set) and its `key.created` event.
  void insert(core::api_key key, callback<core::api_key> done);

  void find_by_id(std::string id, callback<std::optional<core::api_key>> done);

  /// The key whose secret hashes to `key_hash`; used by the data plane on a cache miss.
  void find_by_hash(std::string key_hash, callback<std::optional<core::api_key>> done);

  void list(key_list_query query, callback<key_page> done);

  /// Applies `patch`, sets updated_at, writes a `key.updated` event; nullopt for an unknown id.
  void update(std::string id, key_patch patch, callback<std::optional<core::api_key>> done);

  /// Sets revoked_at (once; revoking again returns the key unchanged) and writes a
  /// `key.revoked` event the first time; nullopt for an unknown id.
  void revoke(std::string id, callback<std::optional<core::api_key>> done);

  /// Keys whose updated_at is at or after `since` (the caller overlaps its windows, so a
  /// transaction that committed late is still seen).
  void changed_since(core::timestamp since, callback<std::vector<core::api_key>> done);

  /// Ensures a key with this hash exists, is active and holds the `admin` scope (ADMIN_API_KEY
  /// bootstrap); creates it named "bootstrap admin" when missing.
  void ensure_admin_key(std::string key_hash, std::string prefix, std::string environment,
                        callback<core::api_key> done);

  /// Number of keys that are neither revoked nor expired.
  void count_active(callback<int64_t> done);

 private:
  std::shared_ptr<db_pool> pool_;
  core::rate_limit defaults_;
};

}  // namespace datahub::persistence
