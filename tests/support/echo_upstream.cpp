// Echo upstream on its own thread, one coroutine-free session per connection.
#include "tests/support/echo_upstream.hpp"

#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace datahub::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bh = beast::http;
using tcp = net::ip::tcp;

namespace {

struct echo_session : std::enable_shared_from_this<echo_session> {
  tcp::socket socket;
  beast::flat_buffer buffer;
  bh::request<bh::string_body> req;
  bh::response<bh::string_body> res;
  std::atomic<int64_t>& counter;

  echo_session(tcp::socket s, std::atomic<int64_t>& c) : socket(std::move(s)), counter(c) {}

  void read() {
    req = {};
    bh::async_read(socket, buffer, req, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec)
        return;
      ++self->counter;
      self->answer();
    });
  }

  void answer() {
    const std::string target{req.target()};
    if (target.rfind("/never", 0) == 0 || target.find("/never") != std::string::npos) {
      // Keep the connection open without answering; the gateway must time out.
      read();
      return;
    }
    nlohmann::json headers = nlohmann::json::object();
    for (const auto& f : req)
      headers[std::string{f.name_string()}] = std::string{f.value()};
    nlohmann::json body{{"method", std::string{req.method_string()}},
                        {"target", target},
                        {"headers", headers},
                        {"body", req.body()}};
    unsigned status = 200;
    const auto pos = target.find("/status/");
    if (pos != std::string::npos)
      status = static_cast<unsigned>(std::stoi(target.substr(pos + 8, 3)));
    res = {static_cast<bh::status>(status), req.version()};
    res.set(bh::field::content_type, "application/json");
    res.set("X-Upstream", "echo");
    res.set("Keep-Alive", "timeout=5");
    res.set("Connection", "keep-alive, X-Secret-Hop");
    res.set("X-Secret-Hop", "must-not-reach-the-client");
    res.body() = body.dump();
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    bh::async_write(socket, res, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec || !self->res.keep_alive())
        return;
      self->read();
    });
  }
};

}  // namespace

struct echo_upstream::impl {
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc, tcp::endpoint{net::ip::make_address("127.0.0.1"), 0}};
  std::atomic<int64_t> counter{0};
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket s) {
      if (ec)
        return;
      std::make_shared<echo_session>(std::move(s), counter)->read();
      accept();
    });
  }
};

echo_upstream::echo_upstream() : impl_(std::make_unique<impl>()) {
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->ioc.run(); });
}

echo_upstream::~echo_upstream() {
  impl_->ioc.stop();
  impl_->thread.join();
}

uint16_t echo_upstream::port() const {
  return impl_->acceptor.local_endpoint().port();
}

int64_t echo_upstream::requests() const {
  return impl_->counter.load();
}

}  // namespace datahub::testing
