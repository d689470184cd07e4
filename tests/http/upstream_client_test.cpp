// The upstream client against scripted upstreams on loopback: connection reuse, the one retry
// of a pooled connection the upstream closed, and each failure's outcome (refused, timeout,
// ambiguous framing, oversized body).
#include "http/upstream_client.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>

#include "http/forwarding.hpp"

namespace datahub::http {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

/// A loopback upstream that runs `script(socket, connection_index)` on a thread per accepted
/// connection, with blocking sockets, so each test writes exactly the bytes it needs.
class scripted_upstream {
 public:
  using script = std::function<void(tcp::socket&, int)>;

  explicit scripted_upstream(script s) : script_(std::move(s)), acceptor_(io_) {
    tcp::endpoint endpoint{net::ip::make_address("127.0.0.1"), 0};
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  ~scripted_upstream() {
    stopping_ = true;
    // Wakes the blocking accept.
    boost::system::error_code ec;
    tcp::socket poke{io_};
    poke.connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), port_}, ec);
    accept_thread_.join();
    std::lock_guard<std::mutex> lock{mutex_};
    for (auto& t : connection_threads_)
      t.join();
  }

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

  upstream_target target() const {
    upstream_target t;
    t.host = "127.0.0.1";
    t.port = port_;
    t.authority = "127.0.0.1:" + std::to_string(port_);
    return t;
  }

 private:
  void accept_loop() {
    for (;;) {
      auto socket = std::make_shared<tcp::socket>(io_);
      boost::system::error_code ec;
      acceptor_.accept(*socket, ec);
      if (stopping_ || ec)
        return;
      const int index = accepted_++;
      std::lock_guard<std::mutex> lock{mutex_};
      connection_threads_.emplace_back([this, socket, index] { script_(*socket, index); });
    }
  }

  script script_;
  net::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::thread accept_thread_;
  std::mutex mutex_;
  std::vector<std::thread> connection_threads_;
};

/// Reads one request; false when the client closed the connection.
bool read_request(tcp::socket& socket, boost::beast::flat_buffer& buffer, request* out = nullptr) {
  request req;
  boost::system::error_code ec;
  bh::read(socket, buffer, req, ec);
  if (ec)
    return false;
  if (out)
    *out = std::move(req);
  return true;
}

void write_raw(tcp::socket& socket, const std::string& bytes) {
  boost::system::error_code ec;
  net::write(socket, net::buffer(bytes), ec);
}

const std::string ok_answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Answers every request on the connection with `ok_answer` until the client leaves.
void serve_forever(tcp::socket& socket) {
  boost::beast::flat_buffer buffer;
  while (read_request(socket, buffer))
    write_raw(socket, ok_answer);
}

class UpstreamClient : public ::testing::Test {
 protected:
  ~UpstreamClient() override { release_ = true; }

  /// Starts the upstream of this test. It is destroyed after the client's io_context, whose
  /// pooled connections must close first for the upstream's threads to finish.
  scripted_upstream& start_upstream(scripted_upstream::script script) {
    upstream_ = std::make_unique<scripted_upstream>(std::move(script));
    return *upstream_;
  }

  request make_request(bh::verb method, std::string body = {}) {
    request req{method, "/things", 11};
    req.set(bh::field::host, "upstream");
    req.body() = std::move(body);
    if (!req.body().empty() || method == bh::verb::post)
      req.content_length(req.body().size());
    return req;
  }

  /// One call, run to completion on this thread's io_context.
  upstream_result call(const upstream_target& target, request req) {
    std::optional<upstream_result> out;
    net::post(io_, [&] {
      send_upstream(io_.get_executor(), target, std::move(req), limits_,
                    [&](upstream_result r) { out = std::move(r); });
    });
    io_.restart();
    io_.run();
    EXPECT_TRUE(out.has_value());
    return out ? std::move(*out) : upstream_result{};
  }

  size_t idle(const upstream_target& target) {
    return idle_upstream_connections(io_.get_executor(), target);
  }

  /// Lets scripts that stall finish at the end of the test.
  std::atomic<bool> release_{false};
  std::unique_ptr<scripted_upstream> upstream_;
  net::io_context io_;
  upstream_limits limits_;
};

TEST_F(UpstreamClient, ReusesAKeepAliveConnection) {
  auto& upstream = start_upstream([](tcp::socket& s, int) { serve_forever(s); });
  const auto target = upstream.target();
  for (int i = 0; i < 3; ++i) {
    auto result = call(target, make_request(bh::verb::get));
    ASSERT_EQ(result.result, upstream_result::outcome::ok) << result.detail;
    EXPECT_EQ(result.res.result_int(), 200u);
    EXPECT_EQ(result.res.body(), "ok");
  }
  EXPECT_EQ(upstream.accepted(), 1);
  EXPECT_EQ(idle(target), 1u);
}

TEST_F(UpstreamClient, SendsTheRequestAsGiven) {
  std::mutex mutex;
  request seen;
  auto& upstream = start_upstream([&](tcp::socket& s, int) {
    boost::beast::flat_buffer buffer;
    request req;
    if (!read_request(s, buffer, &req))
      return;
    {
      std::lock_guard<std::mutex> lock{mutex};
      seen = std::move(req);
    }
    write_raw(s, ok_answer);
    serve_forever(s);
  });
  auto req = make_request(bh::verb::put, "payload");
  req.set("X-Custom", "1");
  auto result = call(upstream.target(), std::move(req));
  ASSERT_EQ(result.result, upstream_result::outcome::ok) << result.detail;
  std::lock_guard<std::mutex> lock{mutex};
  EXPECT_EQ(seen.method(), bh::verb::put);
  EXPECT_EQ(seen.target(), "/things");
  EXPECT_EQ(seen.body(), "payload");
  EXPECT_EQ(seen["X-Custom"], "1");
}

// The upstream closes a kept-alive connection just as the next request arrives: the request
// never reached a handler, so an idempotent one is repeated on a new connection.
TEST_F(UpstreamClient, RetriesAnIdempotentRequestWhenThePooledConnectionWasClosed) {
  auto& upstream = start_upstream([](tcp::socket& s, int index) {
    boost::beast::flat_buffer buffer;
    if (index == 0) {
      if (read_request(s, buffer))
        write_raw(s, ok_answer);
      read_request(s, buffer);
      s.close();
      return;
    }
    serve_forever(s);
  });
  const auto target = upstream.target();
  ASSERT_EQ(call(target, make_request(bh::verb::get)).result, upstream_result::outcome::ok);
  auto second = call(target, make_request(bh::verb::get));
  ASSERT_EQ(second.result, upstream_result::outcome::ok) << second.detail;
  EXPECT_EQ(second.res.body(), "ok");
  EXPECT_EQ(upstream.accepted(), 2);
}

TEST_F(UpstreamClient, DoesNotRetryANonIdempotentRequest) {
  auto& upstream = start_upstream([](tcp::socket& s, int index) {
    boost::beast::flat_buffer buffer;
    if (index == 0) {
      if (read_request(s, buffer))
        write_raw(s, ok_answer);
      read_request(s, buffer);
      s.close();
      return;
    }
    serve_forever(s);
  });
  const auto target = upstream.target();
  ASSERT_EQ(call(target, make_request(bh::verb::get)).result, upstream_result::outcome::ok);
  auto post = call(target, make_request(bh::verb::post, "{}"));
  EXPECT_EQ(post.result, upstream_result::outcome::unavailable);
  EXPECT_EQ(upstream.accepted(), 1);
}

// A connection the upstream closed while it sat idle is noticed before use, so even a POST
// (never retried) goes through on a new connection.
TEST_F(UpstreamClient, SkipsAPooledConnectionClosedWhileIdle) {
  auto& upstream = start_upstream([](tcp::socket& s, int index) {
    boost::beast::flat_buffer buffer;
    if (index == 0) {
      if (read_request(s, buffer))
        write_raw(s, ok_answer);
      s.close();
      return;
    }
    serve_forever(s);
  });
  const auto target = upstream.target();
  ASSERT_EQ(call(target, make_request(bh::verb::get)).result, upstream_result::outcome::ok);
  std::this_thread::sleep_for(100ms);
  auto post = call(target, make_request(bh::verb::post, "{}"));
  ASSERT_EQ(post.result, upstream_result::outcome::ok) << post.detail;
  EXPECT_EQ(upstream.accepted(), 2);
}

TEST_F(UpstreamClient, DoesNotPoolAConnectionTheUpstreamWillClose) {
  auto& upstream = start_upstream([](tcp::socket& s, int) {
    boost::beast::flat_buffer buffer;
    if (read_request(s, buffer))
      write_raw(s, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
    s.close();
  });
  const auto target = upstream.target();
  auto result = call(target, make_request(bh::verb::get));
  ASSERT_EQ(result.result, upstream_result::outcome::ok) << result.detail;
  EXPECT_EQ(idle(target), 0u);
}

TEST_F(UpstreamClient, ReadsAnAnswerDelimitedByTheConnectionClose) {
  auto& upstream = start_upstream([](tcp::socket& s, int) {
    boost::beast::flat_buffer buffer;
    if (read_request(s, buffer))
      write_raw(s, "HTTP/1.0 200 OK\r\n\r\nuntil the end");
    s.close();
  });
  const auto target = upstream.target();
  auto result = call(target, make_request(bh::verb::get));
  ASSERT_EQ(result.result, upstream_result::outcome::ok) << result.detail;
  EXPECT_EQ(result.res.body(), "until the end");
  EXPECT_EQ(idle(target), 0u);
}

TEST_F(UpstreamClient, ReportsARefusedConnectionAsUnavailable) {
  upstream_target target;
  {
    // A port that was free a moment ago and has no listener now.
    net::io_context io;
    tcp::acceptor acceptor{io, tcp::endpoint{net::ip::make_address("127.0.0.1"), 0}};
    target.host = "127.0.0.1";
    target.port = acceptor.local_endpoint().port();
    target.authority = "127.0.0.1:" + std::to_string(target.port);
  }
  auto result = call(target, make_request(bh::verb::get));
  EXPECT_EQ(result.result, upstream_result::outcome::unavailable);
  EXPECT_FALSE(result.detail.empty());
}

TEST_F(UpstreamClient, ReportsATimeoutWhenTheUpstreamIsSilent) {
  auto& upstream = start_upstream([this](tcp::socket& s, int) {
    boost::beast::flat_buffer buffer;
    read_request(s, buffer);
    while (!release_)
      std::this_thread::sleep_for(10ms);
  });
  limits_.timeout = 150ms;
  const auto started = std::chrono::steady_clock::now();
  auto result = call(upstream.target(), make_request(bh::verb::get));
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(result.result, upstream_result::outcome::timeout);
  EXPECT_GE(elapsed, 140ms);
  EXPECT_LT(elapsed, 2s);
}

TEST_F(UpstreamClient, TimesOutAnAnswerThatTricklesPastTheDeadline) {
  auto& upstream = start_upstream([&](tcp::socket& s, int) {
    boost::beast::flat_buffer buffer;
    if (!read_request(s, buffer))
      return;
    write_raw(s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    // A byte every 50 ms: each read makes progress, but the whole answer is late.
    for (int i = 0; i < 100 && !release_; ++i) {
      write_raw(s, "x");
      std::this_thread::sleep_for(50ms);
    }
  });
  limits_.timeout = 300ms;
  auto result = call(upstream.target(), make_request(bh::verb::get));
  EXPECT_EQ(result.result, upstream_result::outcome::timeout);
}

TEST_F(UpstreamClient, RefusesAnAnswerWithBothContentLengthAndTransferEncoding) {
  auto& upstream = start_upstream([](tcp::socket& s, int) {
    boost::beast::flat_buffer buffer;
    if (read_request(s, buffer))
      write_raw(s,
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\n0\r\n\r\n");
    boost::system::error_code ec;
    char byte;
    s.read_some(net::buffer(&byte, 1), ec);
  });
  auto result = call(upstream.target(), make_request(bh::verb::get));
  EXPECT_EQ(result.result, upstream_result::outcome::bad_response);
}

TEST_F(UpstreamClient, RefusesAnAnswerOverTheBodyLimit) {
  auto& upstream = start_upstream([](tcp::socket& s, int) {
    boost::beast::flat_buffer buffer;
    if (read_request(s, buffer))
      write_raw(s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x'));
    serve_forever(s);
  });
  limits_.max_body_bytes = 10;
  auto result = call(upstream.target(), make_request(bh::verb::get));
  EXPECT_EQ(result.result, upstream_result::outcome::bad_response);
  EXPECT_NE(result.detail.find("body limit"), std::string::npos) << result.detail;
}

TEST_F(UpstreamClient, BuffersAChunkedAnswer) {
  auto& upstream = start_upstream([](tcp::socket& s, int) {
    boost::beast::flat_buffer buffer;
    if (read_request(s, buffer))
      write_raw(s,
                "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n"
                "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    serve_forever(s);
  });
  const auto target = upstream.target();
  auto result = call(target, make_request(bh::verb::get));
  ASSERT_EQ(result.result, upstream_result::outcome::ok) << result.detail;
  EXPECT_EQ(result.res.result_int(), 201u);
  EXPECT_EQ(result.res.body(), "hello world");
  filter_response_headers(result.res);
  EXPECT_EQ(result.res.find(bh::field::transfer_encoding), result.res.end());
  EXPECT_EQ(result.res["X-Up"], "1");
  EXPECT_EQ(idle(target), 1u);
}

TEST_F(UpstreamClient, SkipsInterimAnswers) {
  auto& upstream = start_upstream([](tcp::socket& s, int) {
    boost::beast::flat_buffer buffer;
    if (read_request(s, buffer))
      write_raw(s, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" +
                       ok_answer);
    serve_forever(s);
  });
  auto result = call(upstream.target(), make_request(bh::verb::get));
  ASSERT_EQ(result.result, upstream_result::outcome::ok) << result.detail;
  EXPECT_EQ(result.res.result_int(), 200u);
  EXPECT_EQ(result.res.body(), "ok");
}

TEST_F(UpstreamClient, RefusesASwitchToAnotherProtocol) {
  auto& upstream = start_upstream([](tcp::socket& s, int) {
    boost::beast::flat_buffer buffer;
    if (read_request(s, buffer))
      write_raw(s, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
    serve_forever(s);
  });
  auto result = call(upstream.target(), make_request(bh::verb::get));
  EXPECT_EQ(result.result, upstream_result::outcome::bad_response);
}

TEST_F(UpstreamClient, ReadsNoBodyForHeadAndKeepsTheConnection) {
  auto& upstream = start_upstream([](tcp::socket& s, int) {
    boost::beast::flat_buffer buffer;
    while (read_request(s, buffer))
      write_raw(s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
  });
  const auto target = upstream.target();
  for (int i = 0; i < 2; ++i) {
    auto result = call(target, make_request(bh::verb::head));
    ASSERT_EQ(result.result, upstream_result::outcome::ok) << result.detail;
    EXPECT_TRUE(result.res.body().empty());
    EXPECT_EQ(result.res[bh::field::content_length], "5");
  }
  EXPECT_EQ(upstream.accepted(), 1);
}

TEST_F(UpstreamClient, ResolvesAHostName) {
  auto& upstream = start_upstream([](tcp::socket& s, int) { serve_forever(s); });
  auto target = upstream.target();
  target.host = "localhost";
  target.authority = "localhost:" + std::to_string(target.port);
  auto result = call(target, make_request(bh::verb::get));
  ASSERT_EQ(result.result, upstream_result::outcome::ok) << result.detail;
  EXPECT_EQ(result.res.body(), "ok");
}

TEST_F(UpstreamClient, KeepsAtMostTheBoundOfIdleConnections) {
  // Many calls in flight at once need as many connections; only the bound stays pooled.
  auto& upstream = start_upstream([](tcp::socket& s, int) { serve_forever(s); });
  const auto target = upstream.target();
  const size_t concurrent = max_idle_per_upstream + 6;
  size_t answered = 0;
  net::post(io_, [&] {
    for (size_t i = 0; i < concurrent; ++i)
      send_upstream(io_.get_executor(), target, make_request(bh::verb::get), limits_,
                    [&](upstream_result r) {
                      if (r.result == upstream_result::outcome::ok)
                        ++answered;
                    });
  });
  io_.restart();
  io_.run();
  EXPECT_EQ(answered, concurrent);
  EXPECT_EQ(upstream.accepted(), static_cast<int>(concurrent));
  EXPECT_EQ(idle(target), max_idle_per_upstream);
}

}  // namespace
}  // namespace datahub::http
