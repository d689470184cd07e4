// In-memory stand-ins for the key and usage stores in the actors layer's unit tests. They answer
// on their own worker thread, as the PostgreSQL stores answer on database threads.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "actors/key_source.hpp"

namespace datahub::actors::testing {

/// Runs posted jobs in order on one thread; `hold()` parks the queue until `release()`.
class worker {
 public:
  worker() : thread_([this] { run(); }) {}
  ~worker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      held_ = false;
    }
    cv_.notify_all();
    // The last owner may drop it from inside a job.
    if (thread_.get_id() == std::this_thread::get_id())
      thread_.detach();
    else
      thread_.join();
  }

  void post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_all();
  }

  void hold() {
    std::lock_guard<std::mutex> lock(mutex_);
    held_ = true;
  }

  void release() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      held_ = false;
    }
    cv_.notify_all();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || (!held_ && !jobs_.empty()); });
      if (jobs_.empty() && stopping_)
        return;
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool held_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

class fake_key_source final : public key_source {
 public:
  void put(const core::api_key& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    keys_[key.key_hash] = key;
  }

  void set_failing(bool failing) {
    std::lock_guard<std::mutex> lock(mutex_);
    failing_ = failing;
  }

  int lookups() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return lookups_;
  }

  worker& jobs() { return worker_; }

  void find_by_hash(std::string key_hash, callback<std::optional<core::api_key>> done) override {
    worker_.post([this, key_hash, done = std::move(done)] {
      std::unique_lock<std::mutex> lock(mutex_);
      ++lookups_;
      if (failing_) {
        lock.unlock();
        done(persistence::db_error{persistence::db_errc::unavailable, "fake outage"});
        return;
      }
      std::optional<core::api_key> found;
      if (auto it = keys_.find(key_hash); it != keys_.end())
        found = it->second;
      lock.unlock();
      done(std::move(found));
    });
  }

  void changed_since(core::timestamp since, callback<std::vector<core::api_key>> done) override {
    worker_.post([this, since, done = std::move(done)] {
      std::vector<core::api_key> changed;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const auto& [hash, key] : keys_) {
          if (key.updated_at >= since)
            changed.push_back(key);
        }
      }
      done(std::move(changed));
    });
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, core::api_key> keys_;
  bool failing_ = false;
  int lookups_ = 0;
  worker worker_;  // last: its thread stops before the members it reads
};

class fake_usage_sink final : public usage_sink {
 public:
  void set_failing(bool failing) {
    std::lock_guard<std::mutex> lock(mutex_);
    failing_ = failing;
  }

  /// Every batch written successfully, in order.
  std::vector<std::vector<persistence::usage_row>> batches() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return batches_;
  }

  int attempts() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return attempts_;
  }

  void add(std::vector<persistence::usage_row> rows,
           std::function<void(persistence::db_result<persistence::done_t>)> done) override {
    worker_.post([this, rows = std::move(rows), done = std::move(done)]() mutable {
      std::unique_lock<std::mutex> lock(mutex_);
      ++attempts_;
      if (failing_) {
        lock.unlock();
        done(persistence::db_error{persistence::db_errc::unavailable, "fake outage"});
        return;
      }
      batches_.push_back(std::move(rows));
      lock.unlock();
      done(persistence::done_t{});
    });
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::vector<persistence::usage_row>> batches_;
  bool failing_ = false;
  int attempts_ = 0;
  worker worker_;
};

}  // namespace datahub::actors::testing
