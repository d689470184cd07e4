// A loopback TCP forwarder for fault tests: the gateway talks to PostgreSQL through it, and the
// test cuts it (new connections refused, open ones reset) to make the database "go away".
#pragma once

#include <cstdint>
#include <memory>

namespace datahub::testing {

class tcp_forwarder {
 public:
  /// Forwards 127.0.0.1:<port()> to 127.0.0.1:target_port.
  explicit tcp_forwarder(uint16_t target_port);
  ~tcp_forwarder();

  uint16_t port() const;

  /// Resets every open connection; new ones are accepted and reset at once (what a client
  /// sees of a server that went away).
  void cut();

  /// Forwards new connections again.
  void restore();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace datahub::testing
