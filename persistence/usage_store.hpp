// Batched writes of per-key, per-minute usage counters and last_used_at.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/time.hpp"
#include "persistence/db_result.hpp"

namespace datahub::persistence {

class db_pool;

/// Traffic counters of one key in one minute.
struct usage_counts {
  int64_t requests = 0;
  int64_t status_2xx = 0;
  int64_t status_3xx = 0;
  int64_t status_4xx = 0;
  int64_t status_5xx = 0;
  int64_t rate_limited = 0;
  int64_t bytes_in = 0;
  int64_t bytes_out = 0;

  /// Adds `other` field by field.
  void add(const usage_counts& other) {
    requests += other.requests;
    status_2xx += other.status_2xx;
    status_3xx += other.status_3xx;
    status_4xx += other.status_4xx;
    status_5xx += other.status_5xx;
    rate_limited += other.rate_limited;
    bytes_in += other.bytes_in;
    bytes_out += other.bytes_out;
  }
};

/// One key's traffic in one minute, as accumulated by an instance.
struct usage_row : usage_counts {
  std::string key_id;
  core::timestamp minute;  ///< truncated to the minute
};

class usage_store {
 public:
  explicit usage_store(std::shared_ptr<db_pool> pool);

  /// Adds every row to the stored counters (an upsert that sums) and moves each key's
  /// last_used_at forward to its latest minute, in one transaction.
  void add(std::vector<usage_row> rows, std::function<void(db_result<done_t>)> done);

 private:
  std::shared_ptr<db_pool> pool_;
};

}  // namespace datahub::persistence
