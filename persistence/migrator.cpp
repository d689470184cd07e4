// Migration runner: an advisory lock around the whole run, one transaction per migration, and
// SHA-256 checksums that catch a migration edited after it was applied.
#include "persistence/migrator.hpp"

#include <algorithm>
#include <chrono>
#include <map>

#include <openssl/evp.h>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include "core/log.hpp"
#include "persistence/pg_support.hpp"

namespace datahub::persistence {

namespace {

// Migrations may take long, so no statement timeout; reaching the server may not.
constexpr std::chrono::milliseconds connect_timeout{10000};

struct recorded_migration {
  std::string checksum;
  int64_t applied_ms = 0;
};

std::map<std::string, recorded_migration> read_recorded(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  std::map<std::string, recorded_migration> out;
  if (!tx.exec1("SELECT to_regclass('schema_migrations') IS NOT NULL")[0].as<bool>())
    return out;
  const auto rows =
      tx.exec("SELECT name, checksum, " + sql_millis("applied_at") + " FROM schema_migrations");
  for (const auto& row : rows)
    out[row[0].as<std::string>()] = {row[1].as<std::string>(), row[2].as<int64_t>()};
  return out;
}

std::string altered_message(const std::string& name) {
  return "migration " + name +
         " was altered after being applied (its checksum differs from the one recorded in "
         "schema_migrations); restore the original file and add a new migration instead";
}

// Releases the advisory lock on every exit path; closing the connection would release it too.
class advisory_lock {
 public:
  explicit advisory_lock(pqxx::connection& conn) : conn_(conn) {
    pqxx::nontransaction tx(conn_);
    tx.exec_params("SELECT pg_advisory_lock($1)", migration_lock_key);
  }
  ~advisory_lock() {
    try {
      pqxx::nontransaction tx(conn_);
      tx.exec_params("SELECT pg_advisory_unlock($1)", migration_lock_key);
    } catch (...) {
      // The session ends with the connection, and the lock with it.
    }
  }
  advisory_lock(const advisory_lock&) = delete;
  advisory_lock& operator=(const advisory_lock&) = delete;

 private:
  pqxx::connection& conn_;
};

}  // namespace

std::string sha256_hex(const std::string& content) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(content.data(), content.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 0xf];
  }
  return out;
}

db_result<std::vector<migration_state>> migration_status(
    const std::string& database_url, const std::vector<migration_source>& sources) {
  try {
    auto conn = open_connection(database_url, connect_timeout, std::nullopt);
    auto recorded = read_recorded(*conn);
    std::vector<migration_state> out;
    for (const auto& source : sources) {
      migration_state state;
      state.name = source.name;
      if (auto it = recorded.find(source.name); it != recorded.end()) {
        state.applied = true;
        state.checksum_matches = it->second.checksum == sha256_hex(source.sql);
        state.applied_at = core::from_unix_ms(it->second.applied_ms);
        recorded.erase(it);
      }
      out.push_back(std::move(state));
    }
    for (const auto& [name, row] : recorded) {
      migration_state state;
      state.name = name;
      state.applied = true;
      state.applied_at = core::from_unix_ms(row.applied_ms);
      state.known = false;
      out.push_back(std::move(state));
    }
    return out;
  } catch (...) {
    return current_db_error();
  }
}

db_result<std::vector<std::string>> apply_migrations(const std::string& database_url,
                                                     const std::vector<migration_source>& sources) {
  std::string current;
  try {
    auto conn = open_connection(database_url, connect_timeout, std::nullopt);
    advisory_lock lock(*conn);
    {
      pqxx::nontransaction tx(*conn);
      tx.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations ("
          " name text PRIMARY KEY,"
          " checksum text NOT NULL,"
          " applied_at timestamptz NOT NULL DEFAULT now())");
    }
    const auto recorded = read_recorded(*conn);

    // Every recorded checksum is checked before anything is applied, so an altered file stops
    // the run with the schema untouched.
    for (const auto& source : sources) {
      const auto it = recorded.find(source.name);
      if (it != recorded.end() && it->second.checksum != sha256_hex(source.sql))
        return db_error{db_errc::failed, altered_message(source.name)};
    }

    std::vector<std::string> applied;
    for (const auto& source : sources) {
      if (recorded.count(source.name) > 0)
        continue;
      current = source.name;
      pqxx::work tx(*conn);
      tx.exec(source.sql);
      tx.exec_params("INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", source.name,
                     sha256_hex(source.sql));
      tx.commit();
      core::log_info("Migration applied", {{"migration", source.name}});
      applied.push_back(source.name);
    }
    return applied;
  } catch (...) {
    auto error = current_db_error();
    if (!current.empty())
      error.detail = "migration " + current + " failed: " + error.detail;
    return error;
  }
}

db_result<std::vector<migration_state>> migration_status(const std::string& database_url) {
  return migration_status(database_url, embedded_migrations());
}

db_result<std::vector<std::string>> apply_migrations(const std::string& database_url) {
  return apply_migrations(database_url, embedded_migrations());
}

bool schema_current(pqxx::connection& conn) {
  const auto recorded = read_recorded(conn);
  return std::all_of(embedded_migrations().begin(), embedded_migrations().end(),
                     [&](const migration_source& source) {
                       const auto it = recorded.find(source.name);
                       return it != recorded.end() && it->second.checksum == sha256_hex(source.sql);
                     });
}

}  // namespace datahub::persistence
