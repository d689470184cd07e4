// Errors and results at the persistence border: library exceptions (pqxx) stop inside the
// adapters and leave as these values.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace datahub::persistence {

/// Why a database call did not produce a value.
enum class db_errc {
  unavailable,  ///< PostgreSQL could not be reached (or the connection broke mid-query)
  overloaded,   ///< the pool's bounded queue is full
  timeout,      ///< the query did not finish within DATABASE_TIMEOUT_MS
  conflict,     ///< a unique constraint refused the write
  failed,       ///< any other query failure (a bug or a schema mismatch)
};

std::string_view to_string(db_errc code);

struct db_error {
  db_errc code = db_errc::failed;
  std::string detail;  ///< for the log, never for the client
};

/// A value or a db_error.
template <class T>
class db_result {
 public:
  db_result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  db_result(db_error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const db_error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, db_error> v_;
};

/// For calls that produce nothing but success.
struct done_t {};

}  // namespace datahub::persistence
