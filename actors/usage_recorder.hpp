// Per-key, per-minute usage counting for SPEC 3.5: requests are counted in memory and written
// to PostgreSQL in batches by the usage store, never one write per request.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace caf {
class actor_system;
}

namespace datahub::config {
struct settings;
}

namespace datahub::core {
class metrics;
}

namespace datahub::persistence {
class usage_store;
}

namespace datahub::actors {

class usage_sink;

class usage_recorder {
 public:
  /// `store` must outlive the recorder and its last write.
  usage_recorder(caf::actor_system& system, persistence::usage_store& store,
                 const config::settings& settings, core::metrics& metrics);
  usage_recorder(caf::actor_system& system, std::shared_ptr<usage_sink> sink,
                 const config::settings& settings, core::metrics& metrics);
  ~usage_recorder();

  /// Counts one finished request of `key_id`. Cheap and non-blocking; callable from any thread.
  void record(const std::string& key_id, unsigned status, bool rate_limited, uint64_t bytes_in,
              uint64_t bytes_out);

  /// Writes everything counted so far and waits (up to `timeout_ms`) for the write; used at
  /// shutdown. True when the buffer was written.
  bool flush(int64_t timeout_ms);

  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace datahub::actors
