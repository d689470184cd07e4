// Usage counting: requests are summed per (key, minute) in sharded in-memory maps on the hot
// path, and a flusher actor hands everything to the usage sink as one batch every
// usage_flush_interval. Rows whose write failed wait for the next flush, up to usage_buffer_max
// key-minutes; beyond that the oldest minutes are dropped and counted.
#include "actors/usage_recorder.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "actors/key_source.hpp"
#include "actors/messages.hpp"
#include "config/settings.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/time.hpp"

namespace datahub::actors {

namespace {

constexpr size_t shard_count = 16;
constexpr int64_t ms_per_minute = 60'000;

using counters = persistence::usage_counts;

/// One key's counters for one minute.
struct cell {
  int64_t minute_ms = 0;
  counters c;
};

/// A shard maps key ids to their few open minutes, so the hot path looks a key up by its id
/// (no allocation once the key is present) and scans a vector that rarely holds two cells.
struct shard {
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<cell>> cells;
};

/// Rows waiting for a write, oldest minute first, so trimming drops the oldest.
using buffer_key = std::pair<int64_t, std::string>;
using row_buffer = std::map<buffer_key, counters>;

persistence::usage_row to_row(const buffer_key& k, const counters& c) {
  persistence::usage_row row;
  static_cast<counters&>(row) = c;
  row.key_id = k.second;
  row.minute = core::from_unix_ms(k.first);
  return row;
}

}  // namespace

/// Shared with the sink's callbacks, which may run after the recorder is gone.
class recorder_core : public std::enable_shared_from_this<recorder_core> {
 public:
  recorder_core(std::shared_ptr<usage_sink> sink, size_t buffer_max, core::metrics& metrics)
      : sink_(std::move(sink)),
        buffer_max_(buffer_max),
        rejections_(metrics.queue_rejections_total.Add({{"queue", "usage"}})),
        entries_gauge_(metrics.usage_buffer_entries.Add({})) {}

  void record(const std::string& key_id, unsigned status, bool rate_limited, uint64_t bytes_in,
              uint64_t bytes_out) {
    const int64_t minute = core::to_unix_ms(core::now()) / ms_per_minute * ms_per_minute;
    auto& s = shards_[std::hash<std::string>{}(key_id) % shard_count];
    std::lock_guard<std::mutex> lock(s.mutex);
    auto& cells = s.cells[key_id];
    auto it = std::find_if(cells.rbegin(), cells.rend(),
                           [minute](const cell& c) { return c.minute_ms == minute; });
    counters* c = nullptr;
    if (it != cells.rend()) {
      c = &it->c;
    } else {
      cells.push_back(cell{minute, {}});
      c = &cells.back().c;
    }
    c->requests += 1;
    if (status >= 200 && status < 300)
      c->status_2xx += 1;
    else if (status >= 300 && status < 400)
      c->status_3xx += 1;
    else if (status >= 400 && status < 500)
      c->status_4xx += 1;
    else if (status >= 500 && status < 600)
      c->status_5xx += 1;
    if (rate_limited)
      c->rate_limited += 1;
    c->bytes_in += static_cast<int64_t>(bytes_in);
    c->bytes_out += static_cast<int64_t>(bytes_out);
  }

  /// Moves everything counted so far into the write buffer.
  void collect() {
    row_buffer moved;
    for (auto& s : shards_) {
      std::unordered_map<std::string, std::vector<cell>> cells;
      {
        std::lock_guard<std::mutex> lock(s.mutex);
        cells.swap(s.cells);
      }
      for (auto& [key_id, list] : cells) {
        for (auto& cl : list)
          moved[{cl.minute_ms, key_id}].add(cl.c);
      }
    }
    std::lock_guard<std::mutex> lock(buffer_mutex_);
    for (auto& [k, c] : moved)
      buffer_[k].add(c);
    trim_locked();
  }

  /// Starts a write of the whole buffer unless one is running or there is nothing to write.
  /// Returns the write's generation, or 0 when none was started.
  uint64_t write() {
    std::vector<persistence::usage_row> rows;
    uint64_t generation = 0;
    {
      std::lock_guard<std::mutex> lock(buffer_mutex_);
      if (in_flight_ || buffer_.empty())
        return 0;
      rows.reserve(buffer_.size());
      for (const auto& [k, c] : buffer_)
        rows.push_back(to_row(k, c));
      in_flight_rows_ = buffer_.size();
      buffer_.clear();
      in_flight_ = true;
      generation = ++started_;
    }
    // The sink takes the rows; a copy stays here to put back if the write fails.
    auto copy = rows;
    std::weak_ptr<recorder_core> weak = shared_from_this();
    sink_->add(std::move(rows), [weak, kept = std::move(copy)](
                                    persistence::db_result<persistence::done_t> r) mutable {
      if (auto core = weak.lock())
        core->on_written(r, std::move(kept));
    });
    return generation;
  }

  /// Writes everything counted so far; waits up to `timeout` for it. A write the flusher
  /// started meanwhile is waited for first.
  bool flush(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    collect();
    std::unique_lock<std::mutex> lock(buffer_mutex_);
    bool wrote = false;
    for (;;) {
      if (!done_.wait_until(lock, deadline, [this] { return !in_flight_; }))
        return false;
      if (buffer_.empty())
        return true;
      if (wrote)
        return false;  // our write failed and its rows are back in the buffer
      lock.unlock();
      wrote = write() != 0;
      lock.lock();
    }
  }

  void update_gauge() {
    size_t open = 0;
    for (auto& s : shards_) {
      std::lock_guard<std::mutex> lock(s.mutex);
      for (const auto& [key_id, list] : s.cells)
        open += list.size();
    }
    std::lock_guard<std::mutex> lock(buffer_mutex_);
    entries_gauge_.Set(static_cast<double>(open + buffer_.size() + in_flight_rows_));
  }

 private:
  void on_written(const persistence::db_result<persistence::done_t>& r,
                  std::vector<persistence::usage_row> rows) {
    {
      std::lock_guard<std::mutex> lock(buffer_mutex_);
      if (!r.ok()) {
        // Older rows go back beside the ones counted meanwhile; trimming keeps the newest.
        for (const auto& row : rows)
          buffer_[{core::to_unix_ms(row.minute), row.key_id}].add(row);
        trim_locked();
      }
      in_flight_ = false;
      in_flight_rows_ = 0;
    }
    done_.notify_all();
    if (!r.ok())
      warn_limited(r.error());
  }

  /// Holds buffer_mutex_.
  void trim_locked() {
    while (buffer_.size() > buffer_max_) {
      buffer_.erase(buffer_.begin());
      rejections_.Increment();
    }
  }

  void warn_limited(const persistence::db_error& error) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lock(buffer_mutex_);
    if (last_warn_ && now - *last_warn_ < std::chrono::seconds{10})
      return;
    last_warn_ = now;
    core::log_warn("usage write failed; rows kept for the next flush",
                   {{"error", to_string(error.code)}, {"detail", error.detail}});
  }

  std::shared_ptr<usage_sink> sink_;
  const size_t buffer_max_;
  prometheus::Counter& rejections_;
  prometheus::Gauge& entries_gauge_;
  std::array<shard, shard_count> shards_;

  std::mutex buffer_mutex_;  ///< guards everything below
  std::condition_variable done_;
  row_buffer buffer_;
  bool in_flight_ = false;
  size_t in_flight_rows_ = 0;
  uint64_t started_ = 0;
  std::optional<std::chrono::steady_clock::time_point> last_warn_;
};

struct usage_recorder::impl {
  std::shared_ptr<recorder_core> core;
  caf::actor flusher;
};

usage_recorder::usage_recorder(caf::actor_system& system, std::shared_ptr<usage_sink> sink,
                               const config::settings& settings, core::metrics& metrics)
    : impl_(std::make_unique<impl>()) {
  impl_->core =
      std::make_shared<recorder_core>(std::move(sink), settings.usage_buffer_max, metrics);
  std::weak_ptr<recorder_core> weak = impl_->core;
  const auto interval = settings.usage_flush_interval;
  impl_->flusher = system.spawn([weak, interval](caf::event_based_actor* self) -> caf::behavior {
    self->delayed_send(self, interval, tick_atom::value);
    return {
        [=](tick_atom) {
          auto core = weak.lock();
          if (!core)
            return;
          core->collect();
          core->write();
          core->update_gauge();
          self->delayed_send(self, interval, tick_atom::value);
        },
    };
  });
}

usage_recorder::~usage_recorder() {
  stop();
}

void usage_recorder::record(const std::string& key_id, unsigned status, bool rate_limited,
                            uint64_t bytes_in, uint64_t bytes_out) {
  impl_->core->record(key_id, status, rate_limited, bytes_in, bytes_out);
}

bool usage_recorder::flush(int64_t timeout_ms) {
  const bool ok = impl_->core->flush(std::chrono::milliseconds{timeout_ms});
  impl_->core->update_gauge();
  return ok;
}

void usage_recorder::stop() {
  if (impl_->flusher) {
    caf::anon_send_exit(impl_->flusher, caf::exit_reason::user_shutdown);
    impl_->flusher = nullptr;
  }
}

}  // namespace datahub::actors
