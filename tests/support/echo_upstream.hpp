// A loopback upstream for data-plane tests. It answers every request with 200 and a JSON body
// describing what it received (method, target, headers, body), except:
//   /never...   accepts and reads the request but never answers (for 504 tests);
//   /status/N   answers with status N.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace datahub::testing {

class echo_upstream {
 public:
  echo_upstream();
  ~echo_upstream();

  uint16_t port() const;

  /// Requests received so far.
  int64_t requests() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace datahub::testing
