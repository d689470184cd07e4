// The two narrow views of persistence the actors layer depends on: where key records come from
// and where usage rows go. The PostgreSQL stores satisfy them through store_adapters.hpp; unit
// tests pass in-memory ones.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/api_key.hpp"
#include "persistence/db_result.hpp"
#include "persistence/usage_store.hpp"

namespace datahub::actors {

/// Key records by hash, and the keys changed since a moment. Callbacks may run on any thread,
/// never on the caller's, and each exactly once.
class key_source {
 public:
  template <class T>
  using callback = std::function<void(persistence::db_result<T>)>;

  virtual ~key_source() = default;

  virtual void find_by_hash(std::string key_hash, callback<std::optional<core::api_key>> done) = 0;

  /// Keys whose updated_at is at or after `since`.
  virtual void changed_since(core::timestamp since, callback<std::vector<core::api_key>> done) = 0;
};

/// Batched usage writes. The callback may run on any thread, exactly once.
class usage_sink {
 public:
  virtual ~usage_sink() = default;

  virtual void add(std::vector<persistence::usage_row> rows,
                   std::function<void(persistence::db_result<persistence::done_t>)> done) = 0;
};

}  // namespace datahub::actors
