// Upstream calls and the per-io_context connection pool. One call's life: take an idle
// connection (or resolve and connect), write the request, read the answer (skipping interim
// 1xx answers), then hand the connection back to the pool when it can carry another request.
// One deadline covers it all. The pool is an Asio service, so it is destroyed with its
// io_context, before the sockets' own services.
#include "http/upstream_client.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include <boost/asio/execution_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

namespace datahub::http {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

/// A connection to one upstream with the read buffer that belongs to it.
struct connection {
  explicit connection(const net::any_io_executor& executor) : stream(executor) {}

  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  steady::time_point idle_since{};
};

/// True when an idle socket has neither been closed by the peer nor received stray bytes. A
/// non-blocking peek costs one system call and catches most connections the upstream closed
/// while they sat in the pool.
bool looks_reusable(tcp::socket& socket) {
  if (!socket.is_open())
    return false;
  char byte = 0;
  const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

class connection_pool : public net::execution_context::service {
 public:
  using key_type = connection_pool;
  static inline net::execution_context::id id;

  explicit connection_pool(net::execution_context& context)
      : net::execution_context::service(context) {}

  /// A live idle connection to `authority`, or nullptr.
  std::unique_ptr<connection> take(std::string_view authority) {
    auto it = idle_.find(authority);
    if (it == idle_.end())
      return nullptr;
    auto& list = it->second;
    const auto oldest_allowed = steady::now() - max_idle_age;
    // Most recently used first: it is the least likely to have been closed by the upstream.
    while (!list.empty()) {
      auto conn = std::move(list.back());
      list.pop_back();
      if (conn->idle_since >= oldest_allowed && looks_reusable(conn->stream.socket()))
        return conn;
    }
    return nullptr;
  }

  void give_back(const std::string& authority, std::unique_ptr<connection> conn) {
    auto it = idle_.find(authority);
    if (it == idle_.end())
      it = idle_.emplace(authority, std::vector<std::unique_ptr<connection>>{}).first;
    auto& list = it->second;
    // The front holds the longest idle; drop those past their age so they do not pile up.
    const auto oldest_allowed = steady::now() - max_idle_age;
    size_t expired = 0;
    while (expired < list.size() && list[expired]->idle_since < oldest_allowed)
      ++expired;
    if (expired > 0)
      list.erase(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(expired));
    if (list.size() >= max_idle_per_upstream)
      return;
    conn->idle_since = steady::now();
    list.push_back(std::move(conn));
  }

  size_t idle(std::string_view authority) const {
    auto it = idle_.find(authority);
    return it == idle_.end() ? 0 : it->second.size();
  }

 private:
  void shutdown() override { idle_.clear(); }

  std::map<std::string, std::vector<std::unique_ptr<connection>>, std::less<>> idle_;
};

connection_pool& pool_of(const net::any_io_executor& executor) {
  return net::use_service<connection_pool>(net::query(executor, net::execution::context));
}

/// A malformed answer, as opposed to a connection that closed early.
bool is_parse_error(const beast::error_code& ec) {
  static const auto& http_category = bh::make_error_code(bh::error::need_more).category();
  return ec && ec.category() == http_category && ec != bh::error::end_of_stream &&
         ec != bh::error::partial_message;
}

bool is_idempotent(bh::verb method) {
  switch (method) {
    case bh::verb::get:
    case bh::verb::head:
    case bh::verb::put:
    case bh::verb::delete_:
    case bh::verb::options:
    case bh::verb::trace:
      return true;
    default:
      return false;
  }
}

class upstream_call : public std::enable_shared_from_this<upstream_call> {
 public:
  upstream_call(const net::any_io_executor& executor, const upstream_target& target, request req,
                const upstream_limits& limits, std::function<void(upstream_result)> done)
      : executor_(executor),
        pool_(pool_of(executor)),
        target_(target),
        req_(std::move(req)),
        limits_(limits),
        done_(std::move(done)),
        deadline_(steady::now() + limits.timeout),
        idempotent_(is_idempotent(req_.method())),
        head_(req_.method() == bh::verb::head) {}

  void start() {
    conn_ = pool_.take(target_.authority);
    if (conn_) {
      reused_ = true;
      do_write();
      return;
    }
    do_connect();
  }

 private:
  void do_connect() {
    reused_ = false;
    conn_ = std::make_unique<connection>(executor_);
    conn_->stream.expires_at(deadline_);
    boost::system::error_code ec;
    const auto address = net::ip::make_address(target_.host, ec);
    if (!ec) {
      // A literal address needs no resolver.
      conn_->stream.async_connect(
          tcp::endpoint{address, target_.port},
          [self = shared_from_this()](beast::error_code cec) { self->on_connect(cec); });
      return;
    }
    do_resolve();
  }

  // Names are resolved once per new connection, never per request; the resolver is not
  // covered by the stream's timer, so a timer of its own enforces the deadline.
  void do_resolve() {
    resolver_.emplace(executor_);
    timer_.emplace(executor_);
    timer_->expires_at(deadline_);
    timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec && self->resolver_) {
        self->resolve_timed_out_ = true;
        self->resolver_->cancel();
      }
    });
    resolver_->async_resolve(
        target_.host, std::to_string(target_.port),
        [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
          self->on_resolve(ec, std::move(results));
        });
  }

  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    timer_->cancel();
    if (resolve_timed_out_)
      return finish(upstream_result::outcome::timeout, "resolving the upstream timed out");
    if (ec)
      return finish(upstream_result::outcome::unavailable,
                    "cannot resolve the upstream host: " + ec.message());
    conn_->stream.async_connect(
        results, [self = shared_from_this()](beast::error_code cec, const tcp::endpoint&) {
          self->on_connect(cec);
        });
  }

  void on_connect(beast::error_code ec) {
    if (ec == beast::error::timeout)
      return finish(upstream_result::outcome::timeout, "connecting to the upstream timed out");
    if (ec)
      return finish(upstream_result::outcome::unavailable,
                    "cannot connect to the upstream: " + ec.message());
    beast::error_code ignored;
    conn_->stream.socket().set_option(tcp::no_delay{true}, ignored);
    do_write();
  }

  void do_write() {
    conn_->stream.expires_at(deadline_);
    bh::async_write(conn_->stream, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->on_write(ec);
    });
  }

  void on_write(beast::error_code ec) {
    if (ec == beast::error::timeout)
      return finish(upstream_result::outcome::timeout, "writing to the upstream timed out");
    if (ec) {
      if (may_retry())
        return retry();
      return finish(upstream_result::outcome::unavailable,
                    "writing to the upstream failed: " + ec.message());
    }
    do_read();
  }

  // The header is read on its own first: Beast 1.74 only enforces the body limit against a
  // Content-Length when the header is parsed without the body (an eager read of the whole
  // message drops that error and buffers the body regardless).
  void do_read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    parser_->body_limit(limits_.max_body_bytes);
    // The answer to HEAD has no body, whatever its Content-Length says.
    if (head_)
      parser_->skip(true);
    bh::async_read_header(
        conn_->stream, conn_->buffer, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec)
      return on_read_error(ec);
    if (parser_->is_done())
      return on_message();
    bh::async_read(conn_->stream, conn_->buffer, *parser_,
                   [self = shared_from_this()](beast::error_code rec, size_t) {
                     if (rec)
                       return self->on_read_error(rec);
                     self->on_message();
                   });
  }

  void on_read_error(beast::error_code ec) {
    if (ec == beast::error::timeout)
      return finish(upstream_result::outcome::timeout, "the upstream did not answer in time");
    if (ec == bh::error::body_limit)
      return finish(upstream_result::outcome::bad_response,
                    "the upstream's answer is larger than the body limit");
    if (is_parse_error(ec))
      return finish(upstream_result::outcome::bad_response,
                    "the upstream's answer is malformed: " + ec.message());
    if (!parser_->got_some() && may_retry())
      return retry();
    finish(upstream_result::outcome::unavailable,
           "the upstream closed the connection: " + ec.message());
  }

  void on_message() {
    const auto status = parser_->get().result_int();
    if (status == 101)
      return finish(upstream_result::outcome::bad_response,
                    "the upstream switched protocols, which the gateway does not proxy");
    if (status >= 100 && status < 200) {
      // An interim answer (100 Continue, 103 Early Hints): the final one follows.
      do_read();
      return;
    }

    const bool reusable =
        parser_->keep_alive() && !parser_->need_eof() && conn_->buffer.size() == 0;
    upstream_result out;
    out.result = upstream_result::outcome::ok;
    out.res = parser_->release();
    parser_.reset();
    if (reusable) {
      conn_->stream.expires_never();
      pool_.give_back(target_.authority, std::move(conn_));
    }
    conn_.reset();
    done_(std::move(out));
  }

  /// Only a pooled connection that failed before any answer, only once, only when repeating
  /// the request cannot do harm.
  bool may_retry() const { return reused_ && idempotent_ && !retried_; }

  void retry() {
    retried_ = true;
    conn_.reset();
    do_connect();
  }

  void finish(upstream_result::outcome what, std::string detail) {
    conn_.reset();
    upstream_result out;
    out.result = what;
    out.detail = std::move(detail);
    done_(std::move(out));
  }

  net::any_io_executor executor_;
  connection_pool& pool_;
  const upstream_target& target_;
  request req_;
  upstream_limits limits_;
  std::function<void(upstream_result)> done_;
  steady::time_point deadline_;
  bool idempotent_;
  bool head_;
  bool reused_ = false;
  bool retried_ = false;
  bool resolve_timed_out_ = false;
  std::unique_ptr<connection> conn_;
  std::optional<bh::response_parser<bh::string_body>> parser_;
  std::optional<tcp::resolver> resolver_;
  std::optional<net::steady_timer> timer_;
};

}  // namespace

void send_upstream(const net::any_io_executor& executor, const upstream_target& target, request req,
                   const upstream_limits& limits, std::function<void(upstream_result)> done) {
  std::make_shared<upstream_call>(executor, target, std::move(req), limits, std::move(done))
      ->start();
}

size_t idle_upstream_connections(const net::any_io_executor& executor,
                                 const upstream_target& target) {
  return pool_of(executor).idle(target.authority);
}

}  // namespace datahub::http
