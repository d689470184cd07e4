// The HTTP/1.1 listener and its sessions (Boost.Beast on Asio). Sessions only read, time out,
// queue and write: each parsed request becomes an exchange handed to the dispatch handler, and
// answers are written back in request order (pipelining, bounded per connection).
//
// Threads: one io_context per I/O thread; the listener accepts on the first and spreads
// connections across all, so a session and everything it owns stay on one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/metrics.hpp"
#include "http/exchange.hpp"

namespace datahub::http {

struct server_options {
  std::string bind_address = "0.0.0.0";
  uint16_t port = 3000;
  size_t max_body_bytes = 10 * 1024 * 1024;
  size_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds idle_timeout{60000};
  size_t max_pipelined = 16;
  int io_threads = 1;
};

class session;

class server {
 public:
  server(server_options options, handler dispatch, core::metrics& metrics);
  ~server();

  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds and starts the I/O threads. Throws std::runtime_error when the port cannot be bound.
  void start();

  /// The bound port (useful with port 0 in tests).
  uint16_t port() const { return bound_port_; }

  /// Closes the listener: no new connections.
  void stop_accepting();

  /// Closes idle connections, lets requests in flight finish (answers carry
  /// `Connection: close`), and waits up to `timeout`. True when nothing was left in flight.
  bool drain(std::chrono::milliseconds timeout);

  /// Stops the I/O threads and joins them.
  void stop();

  /// Requests read but not yet answered and written.
  int64_t in_flight() const { return in_flight_.load(); }

  bool draining() const { return draining_.load(); }

  // Used by sessions.
  const server_options& options() const { return options_; }
  const handler& dispatch() const { return dispatch_; }
  core::metrics& metrics() { return metrics_; }
  void request_started() { in_flight_.fetch_add(1); }
  void request_finished() { in_flight_.fetch_sub(1); }
  void forget(session* s);

 private:
  void do_accept();

  server_options options_;
  handler dispatch_;
  core::metrics& metrics_;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<std::thread> threads_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  size_t next_context_ = 0;
  uint16_t bound_port_ = 0;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<bool> draining_{false};
  std::mutex sessions_mutex_;
  std::unordered_map<session*, std::weak_ptr<session>> sessions_;
  bool stopped_ = false;
};

}  // namespace datahub::http
