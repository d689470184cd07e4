// Forwarder on its own io_context thread.
#include "tests/support/tcp_forwarder.hpp"

#include <array>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio.hpp>

namespace datahub::testing {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

struct pipe_pair : std::enable_shared_from_this<pipe_pair> {
  tcp::socket client;
  tcp::socket server;
  std::array<char, 16384> a{};
  std::array<char, 16384> b{};
  explicit pipe_pair(net::io_context& ioc) : client(ioc), server(ioc) {}

  void start() {
    pump(client, server, a);
    pump(server, client, b);
  }
  void pump(tcp::socket& from, tcp::socket& to, std::array<char, 16384>& buf) {
    auto self = shared_from_this();
    from.async_read_some(net::buffer(buf), [self, &from, &to, &buf](auto ec, size_t n) {
      if (ec)
        return self->close();
      net::async_write(to, net::buffer(buf.data(), n), [self, &from, &to, &buf](auto wec, size_t) {
        if (wec)
          return self->close();
        self->pump(from, to, buf);
      });
    });
  }
  void close() {
    boost::system::error_code ec;
    client.close(ec);
    server.close(ec);
  }
};

}  // namespace

struct tcp_forwarder::impl {
  net::io_context ioc;
  std::unique_ptr<tcp::acceptor> acceptor;
  uint16_t target;
  uint16_t port = 0;
  bool is_cut = false;  ///< while cut, connections are accepted and closed at once
  std::vector<std::weak_ptr<pipe_pair>> pairs;
  std::thread thread;
  std::unique_ptr<net::executor_work_guard<net::io_context::executor_type>> guard;

  // Binds the forwarder's port; after a cut the old connections may hold it for a moment.
  void listen() {
    tcp::endpoint ep{net::ip::make_address("127.0.0.1"), port};
    boost::system::error_code ec;
    for (int attempt = 0; attempt < 100; ++attempt) {
      acceptor = std::make_unique<tcp::acceptor>(ioc);
      acceptor->open(ep.protocol(), ec);
      acceptor->set_option(net::socket_base::reuse_address(true), ec);
      acceptor->bind(ep, ec);
      if (!ec)
        acceptor->listen(net::socket_base::max_listen_connections, ec);
      if (!ec)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (ec)
      throw boost::system::system_error{ec, "tcp_forwarder listen"};
    port = acceptor->local_endpoint().port();
    accept();
  }
  void accept() {
    auto pair = std::make_shared<pipe_pair>(ioc);
    acceptor->async_accept(pair->client, [this, pair](auto ec) {
      if (ec)
        return;
      boost::system::error_code cec;
      if (is_cut)
        cec = net::error::connection_refused;
      else
        pair->server.connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), target}, cec);
      if (cec) {
        pair->close();
      } else {
        pairs.push_back(pair);
        pair->start();
      }
      accept();
    });
  }
  void run_sync(std::function<void()> f) {
    std::promise<void> done;
    net::post(ioc, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
};

tcp_forwarder::tcp_forwarder(uint16_t target_port) : impl_(std::make_unique<impl>()) {
  impl_->target = target_port;
  impl_->listen();
  impl_->guard = std::make_unique<net::executor_work_guard<net::io_context::executor_type>>(
      impl_->ioc.get_executor());
  impl_->thread = std::thread([this] { impl_->ioc.run(); });
}

tcp_forwarder::~tcp_forwarder() {
  cut();
  impl_->run_sync([this] {
    boost::system::error_code ec;
    impl_->acceptor->close(ec);
  });
  impl_->guard.reset();
  impl_->ioc.stop();
  impl_->thread.join();
}

uint16_t tcp_forwarder::port() const {
  return impl_->port;
}

void tcp_forwarder::cut() {
  impl_->run_sync([this] {
    impl_->is_cut = true;
    for (auto& w : impl_->pairs)
      if (auto p = w.lock())
        p->close();
    impl_->pairs.clear();
  });
}

void tcp_forwarder::restore() {
  impl_->run_sync([this] { impl_->is_cut = false; });
}

}  // namespace datahub::testing
