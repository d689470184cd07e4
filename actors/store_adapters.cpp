// The stores behind the actors' interfaces, and the constructors that take the stores.
#include "actors/store_adapters.hpp"

#include <utility>

#include "actors/key_registry.hpp"
#include "actors/usage_recorder.hpp"
#include "persistence/key_store.hpp"
#include "persistence/usage_store.hpp"

namespace datahub::actors {

void key_store_source::find_by_hash(std::string key_hash,
                                    callback<std::optional<core::api_key>> done) {
  store_.find_by_hash(std::move(key_hash), std::move(done));
}

void key_store_source::changed_since(core::timestamp since,
                                     callback<std::vector<core::api_key>> done) {
  store_.changed_since(since, std::move(done));
}

void usage_store_sink::add(std::vector<persistence::usage_row> rows,
                           std::function<void(persistence::db_result<persistence::done_t>)> done) {
  store_.add(std::move(rows), std::move(done));
}

key_registry::key_registry(caf::actor_system& system, persistence::key_store& store,
                           const config::settings& settings, core::metrics& metrics)
    : key_registry(system, std::make_shared<key_store_source>(store), settings, metrics) {}

usage_recorder::usage_recorder(caf::actor_system& system, persistence::usage_store& store,
                               const config::settings& settings, core::metrics& metrics)
    : usage_recorder(system, std::make_shared<usage_store_sink>(store), settings, metrics) {}

}  // namespace datahub::actors
