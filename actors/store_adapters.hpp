// The PostgreSQL stores seen through the actors layer's narrow interfaces (key_source.hpp).
// Kept in their own file so the layer's unit tests link without the stores' implementations.
#pragma once

#include "actors/key_source.hpp"

namespace datahub::persistence {
class key_store;
class usage_store;
}  // namespace datahub::persistence

namespace datahub::actors {

/// key_store as a key_source; the store must outlive it.
class key_store_source final : public key_source {
 public:
  explicit key_store_source(persistence::key_store& store) : store_(store) {}

  void find_by_hash(std::string key_hash, callback<std::optional<core::api_key>> done) override;
  void changed_since(core::timestamp since, callback<std::vector<core::api_key>> done) override;

 private:
  persistence::key_store& store_;
};

/// usage_store as a usage_sink; the store must outlive it.
class usage_store_sink final : public usage_sink {
 public:
  explicit usage_store_sink(persistence::usage_store& store) : store_(store) {}

  void add(std::vector<persistence::usage_row> rows,
           std::function<void(persistence::db_result<persistence::done_t>)> done) override;

 private:
  persistence::usage_store& store_;
};

}  // namespace datahub::actors
