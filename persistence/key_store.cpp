// SQL for api_keys. Every change writes its `key.*` event in the same transaction, and the
// database clock (to the millisecond) sets created_at and updated_at, so instances with skewed
// clocks agree on the order of changes.
#include "persistence/key_store.hpp"

#include <algorithm>

#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include "core/ids.hpp"
#include "persistence/db_pool.hpp"
#include "persistence/pg_support.hpp"

namespace datahub::persistence {

namespace {

const std::string& key_columns() {
  static const std::string columns =
      "id, name, prefix, environment, array_to_json(scopes)::text, rate_limit_minute, "
      "rate_limit_hour, metadata::text, key_hash, " +
      sql_millis("created_at") + ", " + sql_millis("updated_at") + ", " + sql_millis("expires_at") +
      ", " + sql_millis("last_used_at") + ", " + sql_millis("revoked_at");
  return columns;
}

constexpr const char* now_ms = "date_trunc('milliseconds', now())";

std::optional<core::timestamp> optional_time(const pqxx::field& f) {
  if (f.is_null())
    return std::nullopt;
  return core::from_unix_ms(f.as<int64_t>());
}

core::api_key key_from_row(const pqxx::row& r) {
  core::api_key key;
  key.id = r[0].as<std::string>();
  key.name = r[1].as<std::string>();
  key.prefix = r[2].as<std::string>();
  key.environment = r[3].as<std::string>();
  key.scopes = nlohmann::json::parse(r[4].c_str()).get<std::vector<std::string>>();
  if (!r[5].is_null() && !r[6].is_null())
    key.limits = core::rate_limit{r[5].as<int64_t>(), r[6].as<int64_t>()};
  key.metadata = nlohmann::json::parse(r[7].c_str());
  key.key_hash = r[8].as<std::string>();
  key.created_at = core::from_unix_ms(r[9].as<int64_t>());
  key.updated_at = core::from_unix_ms(r[10].as<int64_t>());
  key.expires_at = optional_time(r[11]);
  key.last_used_at = optional_time(r[12]);
  key.revoked_at = optional_time(r[13]);
  return key;
}

std::optional<core::api_key> first_key(const pqxx::result& rows) {
  if (rows.empty())
    return std::nullopt;
  return key_from_row(rows[0]);
}

std::optional<std::string> limit_param(const std::optional<core::rate_limit>& limits,
                                       bool per_minute) {
  if (!limits)
    return std::nullopt;
  return std::to_string(per_minute ? limits->per_minute : limits->per_hour);
}

// The event's time is the change's time, and its data the key object as the admin API shows it.
void write_event(pqxx::work& tx, const char* type, const core::api_key& key,
                 const core::rate_limit& defaults) {
  tx.exec_params("INSERT INTO events (id, type, created_at, data) VALUES ($1, $2, " +
                     sql_timestamp_param(3) + ", $4::jsonb)",
                 core::new_id("evt"), type, core::to_unix_ms(key.updated_at),
                 core::to_json(key, defaults, key.updated_at).dump());
}

const char* status_condition(const std::optional<core::key_status>& status) {
  if (!status)
    return "";
  switch (*status) {
    case core::key_status::active:
      return " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())";
    case core::key_status::revoked:
      return " AND revoked_at IS NOT NULL";
    case core::key_status::expired:
      return " AND revoked_at IS NULL AND expires_at <= now()";
  }
  return "";
}

}  // namespace

key_store::key_store(std::shared_ptr<db_pool> pool, core::rate_limit defaults)
    : pool_(std::move(pool)), defaults_(defaults) {}

void key_store::insert(core::api_key key, callback<core::api_key> done) {
  pool_->query<core::api_key>(
      "insert", "api_keys",
      [key = std::move(key), defaults = defaults_](pqxx::connection& conn) {
        pqxx::work tx(conn);
        const auto minute = limit_param(key.limits, true);
        const auto hour = limit_param(key.limits, false);
        const auto expires = millis_param(key.expires_at);
        const auto rows = tx.exec_params(
            std::string("INSERT INTO api_keys (id, name, prefix, environment, scopes, "
                        "rate_limit_minute, rate_limit_hour, metadata, key_hash, created_at, "
                        "updated_at, expires_at) VALUES ($1, $2, $3, $4, $5::text[], $6::bigint, "
                        "$7::bigint, $8::jsonb, $9, ") +
                now_ms + ", " + now_ms + ", " + sql_timestamp_param(10) + ") RETURNING " +
                key_columns(),
            key.id, key.name, key.prefix, key.environment, text_array_literal(key.scopes),
            nullable(minute), nullable(hour), key.metadata.dump(), key.key_hash, nullable(expires));
        auto stored = key_from_row(rows.at(0));
        write_event(tx, "key.created", stored, defaults);
        tx.commit();
        return stored;
      },
      std::move(done));
}

void key_store::find_by_id(std::string id, callback<std::optional<core::api_key>> done) {
  pool_->query<std::optional<core::api_key>>(
      "select", "api_keys",
      [id = std::move(id)](pqxx::connection& conn) {
        pqxx::nontransaction tx(conn);
        return first_key(
            tx.exec_params("SELECT " + key_columns() + " FROM api_keys WHERE id = $1", id));
      },
      std::move(done));
}

void key_store::find_by_hash(std::string key_hash, callback<std::optional<core::api_key>> done) {
  pool_->query<std::optional<core::api_key>>(
      "select", "api_keys",
      [key_hash = std::move(key_hash)](pqxx::connection& conn) {
        pqxx::nontransaction tx(conn);
        return first_key(tx.exec_params(
            "SELECT " + key_columns() + " FROM api_keys WHERE key_hash = $1", key_hash));
      },
      std::move(done));
}

void key_store::list(key_list_query query, callback<key_page> done) {
  pool_->query<key_page>(
      "select", "api_keys",
      [query = std::move(query)](pqxx::connection& conn) {
        const int limit = std::clamp(query.limit, 1, 100);
        pqxx::nontransaction tx(conn);
        // Ids are ULIDs, so descending ids are newest first; one extra row tells has_more.
        const auto rows = tx.exec_params(
            "SELECT " + key_columns() + " FROM api_keys WHERE ($1::text IS NULL OR id < $1)" +
                status_condition(query.status) + " ORDER BY id DESC LIMIT $2",
            nullable(query.starting_after), limit + 1);
        key_page page;
        for (const auto& row : rows) {
          if (static_cast<int>(page.data.size()) == limit) {
            page.has_more = true;
            break;
          }
          page.data.push_back(key_from_row(row));
        }
        return page;
      },
      std::move(done));
}

void key_store::update(std::string id, key_patch patch,
                       callback<std::optional<core::api_key>> done) {
  pool_->query<std::optional<core::api_key>>(
      "update", "api_keys",
      [id = std::move(id), patch = std::move(patch),
       defaults = defaults_](pqxx::connection& conn) -> std::optional<core::api_key> {
        std::optional<std::string> scopes, minute, hour, metadata, expires;
        if (patch.scopes)
          scopes = text_array_literal(*patch.scopes);
        if (patch.limits) {
          minute = limit_param(*patch.limits, true);
          hour = limit_param(*patch.limits, false);
        }
        if (patch.metadata)
          metadata = patch.metadata->dump();
        if (patch.expires_at)
          expires = millis_param(*patch.expires_at);
        pqxx::work tx(conn);
        // One fixed statement: each field has a flag saying whether the patch sets it.
        const auto rows = tx.exec_params(
            "UPDATE api_keys SET"
            " name = CASE WHEN $2 THEN $3::text ELSE name END,"
            " scopes = CASE WHEN $4 THEN $5::text[] ELSE scopes END,"
            " rate_limit_minute = CASE WHEN $6 THEN $7::bigint ELSE rate_limit_minute END,"
            " rate_limit_hour = CASE WHEN $6 THEN $8::bigint ELSE rate_limit_hour END,"
            " metadata = CASE WHEN $9 THEN $10::jsonb ELSE metadata END,"
            " expires_at = CASE WHEN $11 THEN " +
                sql_timestamp_param(12) +
                " ELSE expires_at END,"
                " updated_at = " +
                now_ms + " WHERE id = $1 RETURNING " + key_columns(),
            id, patch.name.has_value(), patch.name ? patch.name->c_str() : nullptr,
            patch.scopes.has_value(), nullable(scopes), patch.limits.has_value(), nullable(minute),
            nullable(hour), patch.metadata.has_value(), nullable(metadata),
            patch.expires_at.has_value(), nullable(expires));
        auto stored = first_key(rows);
        if (!stored)
          return std::nullopt;
        write_event(tx, "key.updated", *stored, defaults);
        tx.commit();
        return stored;
      },
      std::move(done));
}

void key_store::revoke(std::string id, callback<std::optional<core::api_key>> done) {
  pool_->query<std::optional<core::api_key>>(
      "update", "api_keys",
      [id = std::move(id), defaults = defaults_](pqxx::connection& conn) {
        pqxx::work tx(conn);
        auto revoked = first_key(tx.exec_params(std::string("UPDATE api_keys SET revoked_at = ") +
                                                    now_ms + ", updated_at = " + now_ms +
                                                    " WHERE id = $1 AND revoked_at IS NULL "
                                                    "RETURNING " +
                                                    key_columns(),
                                                id));
        if (revoked) {
          write_event(tx, "key.revoked", *revoked, defaults);
          tx.commit();
          return revoked;
        }
        // Already revoked (answered unchanged, no second event) or unknown.
        auto existing = first_key(
            tx.exec_params("SELECT " + key_columns() + " FROM api_keys WHERE id = $1", id));
        tx.commit();
        return existing;
      },
      std::move(done));
}

void key_store::changed_since(core::timestamp since, callback<std::vector<core::api_key>> done) {
  pool_->query<std::vector<core::api_key>>(
      "select", "api_keys",
      [since](pqxx::connection& conn) {
        pqxx::nontransaction tx(conn);
        const auto rows =
            tx.exec_params("SELECT " + key_columns() + " FROM api_keys WHERE updated_at >= " +
                               sql_timestamp_param(1) + " ORDER BY updated_at, id",
                           core::to_unix_ms(since));
        std::vector<core::api_key> keys;
        keys.reserve(rows.size());
        for (const auto& row : rows)
          keys.push_back(key_from_row(row));
        return keys;
      },
      std::move(done));
}

void key_store::ensure_admin_key(std::string key_hash, std::string prefix, std::string environment,
                                 callback<core::api_key> done) {
  pool_->query<core::api_key>(
      "upsert", "api_keys",
      [key_hash = std::move(key_hash), prefix = std::move(prefix),
       environment = std::move(environment), defaults = defaults_](pqxx::connection& conn) {
        pqxx::work tx(conn);
        // Concurrent starts with the same ADMIN_API_KEY meet in the unique index on key_hash.
        // The update runs only when the key needs repair, so a healthy key is left untouched.
        const auto rows = tx.exec_params(
            std::string("INSERT INTO api_keys (id, name, prefix, environment, scopes, metadata, "
                        "key_hash, created_at, updated_at) VALUES ($1, 'bootstrap admin', $2, $3, "
                        "ARRAY['admin'], '{}', $4, ") +
                now_ms + ", " + now_ms +
                ") ON CONFLICT (key_hash) DO UPDATE SET"
                " revoked_at = NULL,"
                " expires_at = CASE WHEN api_keys.expires_at <= now() THEN NULL"
                " ELSE api_keys.expires_at END,"
                " scopes = CASE WHEN 'admin' = ANY(api_keys.scopes) THEN api_keys.scopes"
                " ELSE array_append(api_keys.scopes, 'admin') END,"
                " updated_at = " +
                now_ms +
                " WHERE api_keys.revoked_at IS NOT NULL OR api_keys.expires_at <= now()"
                " OR NOT ('admin' = ANY(api_keys.scopes))"
                " RETURNING " +
                key_columns() + ", (xmax = 0) AS inserted",
            core::new_id("key"), prefix, environment, key_hash);
        if (!rows.empty()) {
          auto stored = key_from_row(rows[0]);
          write_event(tx, rows[0]["inserted"].as<bool>() ? "key.created" : "key.updated", stored,
                      defaults);
          tx.commit();
          return stored;
        }
        auto existing = first_key(tx.exec_params(
            "SELECT " + key_columns() + " FROM api_keys WHERE key_hash = $1", key_hash));
        tx.commit();
        return existing.value();
      },
      std::move(done));
}

void key_store::count_active(callback<int64_t> done) {
  pool_->query<int64_t>(
      "select", "api_keys",
      [](pqxx::connection& conn) {
        pqxx::nontransaction tx(conn);
        return tx
            .exec1(
                "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL"
                " AND (expires_at IS NULL OR expires_at > now())")[0]
            .as<int64_t>();
      },
      std::move(done));
}

}  // namespace datahub::persistence
