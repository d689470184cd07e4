// Connection strings, exception mapping and parameter encoding for libpqxx.
#include "persistence/pg_support.hpp"

#include <algorithm>

#include <pqxx/except>

namespace datahub::persistence {

namespace {

bool is_uri(const std::string& url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

// libpq takes the connect timeout in whole seconds; round up so a short timeout is not zero
// (which would mean "wait forever").
int64_t connect_timeout_seconds(std::chrono::milliseconds timeout) {
  return std::max<int64_t>(1, (timeout.count() + 999) / 1000);
}

std::string_view sqlstate_of(const std::exception& e) {
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e))
    return sql->sqlstate();
  return {};
}

}  // namespace

std::string conninfo_with_timeouts(const std::string& url,
                                   std::chrono::milliseconds connect_timeout,
                                   std::optional<std::chrono::milliseconds> statement_timeout) {
  const auto seconds = std::to_string(connect_timeout_seconds(connect_timeout));
  // Server notices (e.g. "relation already exists, skipping") would otherwise go to stderr,
  // outside the JSON log.
  std::string options = "-c client_min_messages=warning";
  if (statement_timeout)
    options += " -c statement_timeout=" + std::to_string(statement_timeout->count());
  if (is_uri(url)) {
    std::string encoded;
    for (char c : options)
      encoded += c == ' ' ? std::string("%20") : c == '=' ? std::string("%3D") : std::string(1, c);
    const char sep = url.find('?') == std::string::npos ? '?' : '&';
    return url + sep + "connect_timeout=" + seconds +
           "&application_name=datahub&options=" + encoded;
  }
  return url + " connect_timeout=" + seconds + " application_name=datahub options='" + options +
         "'";
}

std::unique_ptr<pqxx::connection> open_connection(
    const std::string& url, std::chrono::milliseconds connect_timeout,
    std::optional<std::chrono::milliseconds> statement_timeout) {
  return std::make_unique<pqxx::connection>(
      conninfo_with_timeouts(url, connect_timeout, statement_timeout));
}

db_error to_db_error(const std::exception& e) {
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e))
    return {db_errc::unavailable, std::string("commit outcome unknown: ") + e.what()};
  if (dynamic_cast<const pqxx::broken_connection*>(&e))
    return {db_errc::unavailable, e.what()};
  const auto state = sqlstate_of(e);
  if (state == "23505")
    return {db_errc::conflict, e.what()};
  // 57014 query_canceled (statement_timeout), 55P03 lock_not_available (lock_timeout).
  if (state == "57014" || state == "55P03")
    return {db_errc::timeout, e.what()};
  // Class 08 is a connection exception; 57P01..57P03 are the server shutting the session.
  if (state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03")
    return {db_errc::unavailable, e.what()};
  return {db_errc::failed, e.what()};
}

db_error current_db_error() {
  try {
    throw;
  } catch (const std::exception& e) {
    return to_db_error(e);
  } catch (...) {
    return {db_errc::failed, "unknown exception"};
  }
}

std::string text_array_literal(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0)
      out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\')
        out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::string int_array_literal(const std::vector<int64_t>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0)
      out += ',';
    out += std::to_string(values[i]);
  }
  out += '}';
  return out;
}

std::string sql_timestamp_param(int index) {
  return "(timestamptz 'epoch' + $" + std::to_string(index) +
         "::bigint * interval '1 millisecond')";
}

std::string sql_millis(std::string_view column) {
  return "floor(extract(epoch from " + std::string(column) + ") * 1000)::bigint";
}

}  // namespace datahub::persistence
