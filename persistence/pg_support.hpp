// Helpers shared by the PostgreSQL adapters: opening a libpqxx connection with the gateway's
// timeouts, and turning libpqxx exceptions into db_error values. Persistence layer.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/connection>

#include "core/time.hpp"
#include "persistence/db_result.hpp"

namespace datahub::persistence {

/// `url` (a `postgresql://` URI or a `key=value` conninfo) with a connect timeout, a
/// server-side statement timeout (when given) and quiet notices added.
std::string conninfo_with_timeouts(const std::string& url,
                                   std::chrono::milliseconds connect_timeout,
                                   std::optional<std::chrono::milliseconds> statement_timeout);

/// Opens a connection; throws what libpqxx throws (broken_connection when unreachable).
std::unique_ptr<pqxx::connection> open_connection(
    const std::string& url, std::chrono::milliseconds connect_timeout,
    std::optional<std::chrono::milliseconds> statement_timeout);

/// Maps an exception from libpqxx (or a conversion) to a db_error: a broken connection is
/// `unavailable`, a unique violation `conflict`, a cancelled statement `timeout`, anything
/// else `failed`.
db_error to_db_error(const std::exception& e);

/// The db_error for the exception being handled; call only inside a catch block.
db_error current_db_error();

/// A PostgreSQL array literal (`{"a","b"}`) of text values, for a `$n::text[]` parameter.
std::string text_array_literal(const std::vector<std::string>& values);

/// A PostgreSQL array literal of integers, for a `$n::bigint[]` parameter.
std::string int_array_literal(const std::vector<int64_t>& values);

/// SQL turning a parameter of milliseconds since the epoch into a timestamptz (NULL stays NULL).
std::string sql_timestamp_param(int index);

/// SQL reading a timestamptz column as milliseconds since the epoch (NULL stays NULL).
std::string sql_millis(std::string_view column);

/// The value for a nullable text parameter: nullptr becomes SQL NULL.
inline const char* nullable(const std::optional<std::string>& s) {
  return s ? s->c_str() : nullptr;
}

/// Milliseconds as a parameter string, or nullopt for NULL.
inline std::optional<std::string> millis_param(const std::optional<core::timestamp>& t) {
  return t ? std::optional<std::string>(std::to_string(core::to_unix_ms(*t))) : std::nullopt;
}

}  // namespace datahub::persistence
