// Applies the SQL migrations compiled into the binary and reports their state. Synchronous: used
// by `datahub migrate`, by `serve` before it starts listening, and by the readiness check.
//
// Applied migrations are recorded in `schema_migrations` (created by the migrator itself) with
// the hex SHA-256 of the file. A row whose name this binary does not know (written by a newer
// release) is listed by migration_status with `known = false` and otherwise tolerated, so an
// older instance can still start during a rolling upgrade; migrations must therefore stay
// compatible with the previous release.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <pqxx/connection>

#include "core/time.hpp"
#include "persistence/db_result.hpp"
#include "persistence/migration_source.hpp"

namespace datahub::persistence {

/// One migration, embedded or recorded.
struct migration_state {
  std::string name;
  bool applied = false;
  /// Applied with the checksum of the embedded file (true for a pending migration and for one
  /// unknown to this binary, where there is nothing to compare).
  bool checksum_matches = true;
  std::optional<core::timestamp> applied_at;
  /// False for a row in schema_migrations that this binary does not embed.
  bool known = true;
};

/// Key of the session-level advisory lock held while migrations run, so concurrent starts
/// apply each migration exactly once.
inline constexpr int64_t migration_lock_key = 0x6461746168756201;  // "datahub" + 1

/// Hex SHA-256 of `content`.
std::string sha256_hex(const std::string& content);

/// Every embedded migration in order, then unknown recorded ones in name order.
db_result<std::vector<migration_state>> migration_status(const std::string& database_url);

/// Applies the pending embedded migrations in name order, each in its own transaction with its
/// schema_migrations row; returns the names applied now (empty when the schema was current). A
/// migration recorded with a different checksum is an error (`failed`) and nothing further is
/// applied.
db_result<std::vector<std::string>> apply_migrations(const std::string& database_url);

/// The same over explicit sources (tests use altered or extra migrations).
db_result<std::vector<migration_state>> migration_status(
    const std::string& database_url, const std::vector<migration_source>& sources);
db_result<std::vector<std::string>> apply_migrations(const std::string& database_url,
                                                     const std::vector<migration_source>& sources);

/// True when every embedded migration is recorded with a matching checksum. Throws what
/// libpqxx throws; meant to run inside db_pool work.
bool schema_current(pqxx::connection& conn);

}  // namespace datahub::persistence
