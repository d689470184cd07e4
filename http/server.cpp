// Listener and session. A session's life: wait for the first byte of a request (idle timeout),
// read its header (header timeout), check its framing, read its body (idle timeout), hand it
// to dispatch, and keep reading while fewer than max_pipelined answers are pending. Answers
// are written in request order. Any framing error is answered and the connection closed.
#include "http/server.hpp"

#include <array>
#include <deque>
#include <map>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/version.hpp>

#include "core/ids.hpp"
#include "core/log.hpp"

namespace datahub::http {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

namespace {

bool is_safe_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128)
    return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':';
    if (!ok)
      return false;
  }
  return true;
}

std::string status_label(unsigned status) {
  return std::to_string(status);
}

bool iequals(std::string_view a, std::string_view b) {
  return beast::iequals(a, b);
}

/// The metrics `method` label: the standard methods by name, anything else as `OTHER`, so a
/// client cannot create series by inventing methods.
std::string method_label(bh::verb verb) {
  switch (verb) {
    case bh::verb::get:
    case bh::verb::head:
    case bh::verb::post:
    case bh::verb::put:
    case bh::verb::patch:
    case bh::verb::delete_:
    case bh::verb::options:
    case bh::verb::connect:
    case bh::verb::trace:
      return std::string{bh::to_string(verb)};
    default:
      return "OTHER";
  }
}

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

/// Refuses framing that different HTTP implementations could read differently: folded header
/// lines, whitespace before a colon, and Content-Length or Transfer-Encoding values with tabs,
/// trailing whitespace, signs or lists. `block` is the request line and header lines, each
/// ending in CRLF.
std::optional<std::string> check_raw_header(std::string_view block) {
  size_t pos = block.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < block.size()) {
    const size_t start = pos + 2;
    const size_t eol = block.find("\r\n", start);
    const auto line = block.substr(start, eol - start);
    pos = eol;
    if (line.empty())
      break;
    if (is_ows(line.front()))
      return std::string{"Folded header lines are not accepted"};
    const auto colon = line.find(':');
    if (colon == std::string_view::npos)
      continue;  // the parser refuses it
    const auto name = line.substr(0, colon);
    if (!name.empty() && is_ows(name.back()))
      return std::string{"Whitespace before a header colon is not accepted"};
    const bool te = beast::iequals(name, "transfer-encoding");
    const bool cl = beast::iequals(name, "content-length");
    if (!te && !cl)
      continue;
    auto value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
    if (value.empty() || value.find('\t') != std::string_view::npos || is_ows(value.back()))
      return std::string{te ? "Transfer-Encoding" : "Content-Length"} + " has an ambiguous value";
    if (cl && value.find_first_not_of("0123456789") != std::string_view::npos)
      return std::string{"Content-Length must be a plain decimal number"};
  }
  return std::nullopt;
}

}  // namespace

class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket socket, server& owner) : stream_(std::move(socket)), server_(owner) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec)
      remote_ip_ = ep.address().to_string();
    stream_.socket().set_option(tcp::no_delay{true}, ec);
  }

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->do_wait(); });
  }

  /// Called on the session's executor when the server drains.
  void on_drain() {
    draining_ = true;
    // An idle keep-alive connection is closed; a connection that has not sent its first request
    // yet may have one on the wire, so it is read and answered (with Connection: close).
    if (waiting_for_request_ && pending_.empty() && served_ > 0)
      close("drain");
  }

  ~session() { server_.forget(this); }

  net::any_io_executor get_executor_for_drain() { return stream_.get_executor(); }

 private:
  struct slot {
    std::shared_ptr<exchange> ex;
    std::optional<response> res;
  };

  const server_options& opts() const { return server_.options(); }

  // Phase 1: wait for the first bytes of the next request, at most the idle timeout.
  void do_wait() {
    if (closed_)
      return;
    if (buffer_.size() > 0) {
      do_read_header();
      return;
    }
    waiting_for_request_ = true;
    reading_ = true;
    stream_.expires_after(opts().idle_timeout);
    stream_.async_read_some(
        buffer_.prepare(8192),
        [self = shared_from_this()](beast::error_code ec, size_t n) { self->on_wait(ec, n); });
  }

  void on_wait(beast::error_code ec, size_t n) {
    reading_ = false;
    waiting_for_request_ = false;
    if (lingering_) {
      drain_input();
      return;
    }
    if (ec == net::error::eof && !pending_.empty()) {
      // The client half-closed after its requests: answer them, then close.
      close_after_ = true;
      return;
    }
    if (ec) {
      if (ec == beast::error::timeout)
        count_close("idle_timeout");
      close_quietly();
      return;
    }
    // A request whose first bytes arrived is read and answered, even during a drain (the
    // answer then carries Connection: close).
    buffer_.commit(n);
    do_read_header();
  }

  // Phase 2: the header, within the header timeout counted from its first byte. The header
  // block is collected whole and checked as raw bytes before Beast parses it, because the
  // parser normalises exactly what smuggling relies on (whitespace around framing values).
  void do_read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(opts().max_header_bytes));
    parser_->body_limit(opts().max_body_bytes);
    stream_.expires_after(opts().header_timeout);
    continue_header();
  }

  void continue_header() {
    const auto data = buffer_.data();
    const std::string_view view{static_cast<const char*>(data.data()), data.size()};
    const auto end = view.find("\r\n\r\n");
    if (end == std::string_view::npos || end + 4 > opts().max_header_bytes) {
      if (view.size() > opts().max_header_bytes) {
        reject(api_error{api_errc::headers_too_large, "Request headers are too large"});
        return;
      }
      reading_ = true;
      stream_.async_read_some(buffer_.prepare(8192),
                              [self = shared_from_this()](beast::error_code ec, size_t n) {
                                self->reading_ = false;
                                if (self->lingering_)
                                  return self->drain_input();
                                if (ec)
                                  return self->on_read_error(ec, true);
                                self->buffer_.commit(n);
                                self->continue_header();
                              });
      return;
    }
    if (auto problem = check_raw_header(view.substr(0, end + 2))) {
      reject(api_error{api_errc::invalid_request, *problem});
      return;
    }
    beast::error_code ec;
    const auto used = parser_->put(net::buffer(data.data(), end + 4), ec);
    buffer_.consume(used);
    if (!ec && !parser_->is_header_done())
      ec = bh::error::partial_message;
    on_header(ec);
  }

  void on_header(beast::error_code ec) {
    reading_ = false;
    if (ec) {
      on_read_error(ec, true);
      return;
    }
    const auto& h = parser_->get();
    // Framing rules against request smuggling: one unambiguous length only.
    const auto cl_count = std::distance(h.equal_range(bh::field::content_length).first,
                                        h.equal_range(bh::field::content_length).second);
    const auto te_count = std::distance(h.equal_range(bh::field::transfer_encoding).first,
                                        h.equal_range(bh::field::transfer_encoding).second);
    if (te_count > 0 && cl_count > 0) {
      reject_framing("Content-Length and Transfer-Encoding must not both be present");
      return;
    }
    if (te_count > 1 || (te_count == 1 && !iequals(h[bh::field::transfer_encoding], "chunked"))) {
      reject_framing("Transfer-Encoding must be exactly \"chunked\"");
      return;
    }
    if (cl_count > 1) {
      reject_framing("Content-Length must appear once");
      return;
    }
    const auto host_count =
        std::distance(h.equal_range(bh::field::host).first, h.equal_range(bh::field::host).second);
    if (host_count > 1 || (host_count == 0 && h.version() >= 11)) {
      reject_framing("An HTTP/1.1 request needs exactly one Host header");
      return;
    }
    header_fields_ = static_cast<size_t>(std::distance(h.begin(), h.end()));
    if (parser_->is_done()) {
      on_request();
      return;
    }
    if (iequals(h[bh::field::expect], "100-continue")) {
      static const std::string continue_line = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(opts().idle_timeout);
      net::async_write(stream_, net::buffer(continue_line),
                       [self = shared_from_this()](beast::error_code wec, size_t) {
                         if (wec)
                           return self->close_quietly();
                         self->do_read_body();
                       });
      return;
    }
    do_read_body();
  }

  void do_read_body() {
    reading_ = true;
    stream_.expires_after(opts().idle_timeout);
    bh::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) {
                     self->reading_ = false;
                     if (self->lingering_)
                       return self->drain_input();
                     if (ec)
                       return self->on_read_error(ec, false);
                     self->on_request();
                   });
  }

  void on_read_error(beast::error_code ec, bool in_header) {
    if (ec == bh::error::end_of_stream || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof) {
      close_quietly();
      return;
    }
    if (ec == beast::error::timeout) {
      count_close(in_header ? "header_timeout" : "body_timeout");
      close_quietly();
      return;
    }
    if (ec == bh::error::header_limit) {
      reject(api_error{api_errc::headers_too_large, "Request headers are too large"});
      return;
    }
    if (ec == bh::error::body_limit) {
      reject(api_error{api_errc::payload_too_large, "Request body is too large"});
      return;
    }
    reject(api_error{api_errc::invalid_request, "Malformed HTTP request"});
  }

  void reject_framing(const char* why) { reject(api_error{api_errc::invalid_request, why}); }

  // Answers a request that could not be read whole, then closes the connection.
  void reject(api_error error) {
    request req;
    req.version(11);
    if (parser_ && parser_->is_header_done()) {
      req.method(parser_->get().method());
      req.target(parser_->get().target());
    }
    close_after_ = true;
    count_close("bad_request");
    auto ex = make_exchange(std::move(req));
    pending_.push_back(slot{ex, std::nullopt});
    ex->fail(error);
  }

  std::shared_ptr<exchange> make_exchange(request req) {
    // The exchange keeps its session alive until it is answered: while a request is being
    // handled there may be no pending read or write holding the session. The cycle
    // (session -> pending slot -> exchange -> session) ends when the answer is written or the
    // connection closes and the slots are dropped.
    auto executor = stream_.get_executor();
    auto ex = std::make_shared<exchange>(
        std::move(req), executor,
        [self = shared_from_this(), executor](std::shared_ptr<exchange> e, response res) {
          net::post(executor, [self, e = std::move(e), res = std::move(res)]() mutable {
            self->on_response(std::move(e), std::move(res));
          });
        });
    ex->remote_ip = remote_ip_;
    // A request is in flight while its exchange exists: until its answer is written, or until
    // whoever still holds it (a database call for a client that left) lets go.
    server_.request_started();
    ex->in_flight_token =
        std::shared_ptr<void>(nullptr, [&owner = server_](void*) { owner.request_finished(); });
    const auto incoming = ex->req["X-Request-Id"];
    ex->request_id = is_safe_request_id(incoming) ? std::string{incoming} : core::new_request_id();
    return ex;
  }

  void on_request() {
    // Trailer fields of a chunked body land after the header's fields: they are dropped, so
    // nothing in them (a key, a request id, forwarding headers) is taken as a header.
    auto& fields = parser_->get();
    while (static_cast<size_t>(std::distance(fields.begin(), fields.end())) > header_fields_) {
      auto last = fields.begin();
      std::advance(last, static_cast<std::ptrdiff_t>(header_fields_));
      fields.erase(last);
    }
    auto ex = make_exchange(parser_->release());
    parser_.reset();
    if (!ex->req.keep_alive())
      close_after_ = true;
    ++served_;
    pending_.push_back(slot{ex, std::nullopt});
    server_.dispatch()(ex);
    maybe_read_next();
  }

  void maybe_read_next() {
    if (closed_ || reading_ || close_after_ || pending_.size() >= opts().max_pipelined)
      return;
    if (draining_) {
      // No new requests once draining; the last pending answer closes the connection.
      if (pending_.empty())
        close("drain");
      return;
    }
    do_wait();
  }

  void on_response(std::shared_ptr<exchange> ex, response res) {
    for (auto& s : pending_) {
      if (s.ex == ex) {
        finish(*ex, res);
        s.res = std::move(res);
        break;
      }
    }
    do_write();
  }

  struct request_metric_series {
    prometheus::Counter* count = nullptr;
    prometheus::Histogram* duration = nullptr;
  };

  // The request metrics' series, looked up once per label set and I/O thread: the family's own
  // lookup hashes the labels under a mutex on every call. Label sets are bounded (route names,
  // admin templates, methods, statuses), so the cache is too.
  request_metric_series& request_series(const std::string& method, const std::string& path,
                                        const std::string& status) {
    thread_local std::unordered_map<std::string, request_metric_series> cache;
    auto& m = server_.metrics();
    std::string key = std::to_string(reinterpret_cast<uintptr_t>(&m));  // one cache per registry
    key.reserve(key.size() + method.size() + path.size() + status.size() + 3);
    key.push_back('\n');
    key.append(method).push_back('\n');
    key.append(path).push_back('\n');
    key.append(status);
    auto it = cache.find(key);
    if (it != cache.end())
      return it->second;
    const std::map<std::string, std::string> labels{
        {"method", method}, {"path", path}, {"status", status}};
    request_metric_series series{
        &m.http_requests_total.Add(labels),
        &m.http_request_duration_seconds.Add(labels, core::metrics::http_buckets())};
    return cache.emplace(std::move(key), series).first->second;
  }

  // Headers every answer carries, then the request's metrics and log line.
  void finish(exchange& ex, response& res) {
    res.set("X-Request-Id", ex.request_id);
    if (ex.req.method() == bh::verb::head) {
      // A HEAD answer keeps the length of the body it would have had, and sends none.
      if (!res.body().empty()) {
        res.content_length(res.body().size());
        res.body().clear();
      }
    } else {
      res.prepare_payload();
    }

    const auto status = res.result_int();
    const auto elapsed = std::chrono::steady_clock::now() - ex.started;
    const double seconds = std::chrono::duration<double>(elapsed).count();
    const std::string method{ex.req.method_string().empty() ? std::string_view{"UNKNOWN"}
                                                            : ex.req.method_string()};
    const auto status_text = status_label(status);
    auto& series = request_series(method_label(ex.req.method()), ex.path_label, status_text);
    series.count->Increment();
    series.duration->Observe(seconds);
    if (core::log_enabled(spdlog::level::info)) {
      const auto path = ex.path.empty() ? std::string{ex.req.target()} : ex.path;
      core::log_info("Request completed", {{"requestId", ex.request_id},
                                           {"method", method},
                                           {"path", path},
                                           {"statusCode", static_cast<int64_t>(status)},
                                           {"duration", static_cast<int64_t>(seconds * 1000.0)},
                                           {"keyId", ex.key_id},
                                           {"remoteAddress", ex.remote_ip}});
    }
  }

  void do_write() {
    if (writing_ || closed_ || pending_.empty() || !pending_.front().res)
      return;
    writing_ = true;
    auto& front = pending_.front();
    // The connection ends after the last pending answer once the client asked for it, a
    // request could not be read, or the server is draining.
    const bool last = pending_.size() == 1;
    front.res->keep_alive(front.ex->req.keep_alive() && !(last && (close_after_ || draining_)));
    stream_.expires_after(opts().idle_timeout);
    bh::async_write(stream_, *front.res, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->on_write(ec);
    });
  }

  void on_write(beast::error_code ec) {
    writing_ = false;
    if (closed_ || pending_.empty()) {
      pending_.clear();  // the connection was closed while the answer was being written
      return;
    }
    const bool keep = pending_.front().res->keep_alive();
    pending_.pop_front();
    if (ec) {
      close_quietly();
      return;
    }
    if (!keep) {
      linger_close();
      return;
    }
    do_write();
    maybe_read_next();
  }

  // Closes after a final answer without losing it: stop sending, then read and discard what the
  // client still sends (for at most two seconds) so the kernel does not answer its unread
  // bytes with a reset that could destroy our answer in flight.
  void linger_close() {
    if (closed_ || lingering_)
      return;
    lingering_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(2));
    // A read already in flight (the next request's, during a drain) drains from its handler:
    // two reads at once on one stream are not allowed.
    if (!reading_)
      drain_input();
  }

  void drain_input() {
    if (closed_)
      return;
    reading_ = true;
    stream_.async_read_some(net::buffer(discard_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              self->reading_ = false;
                              if (ec)
                                return self->close_quietly();
                              self->drain_input();
                            });
  }

  void count_close(const char* reason) {
    server_.metrics().connections_closed_total.Add({{"reason", reason}}).Increment();
  }

  void close(const char* reason) {
    if (reason && std::string_view{reason} == "drain")
      count_close(reason);
    close_quietly();
  }

  void close_quietly() {
    if (closed_)
      return;
    closed_ = true;
    // Answers still owed to pending requests are abandoned with the connection; an answer being
    // written stays alive until its write completes, since the write reads from it.
    if (writing_)
      pending_.erase(std::next(pending_.begin()), pending_.end());
    else
      pending_.clear();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  server& server_;
  beast::flat_buffer buffer_;
  std::array<char, 4096> discard_{};
  std::optional<bh::request_parser<bh::string_body>> parser_;
  std::deque<slot> pending_;
  std::string remote_ip_;
  bool reading_ = false;
  bool writing_ = false;
  bool waiting_for_request_ = false;
  bool close_after_ = false;
  bool draining_ = false;
  bool closed_ = false;
  bool lingering_ = false;    ///< the last answer is written; only draining input until EOF
  size_t header_fields_ = 0;  ///< fields in the request's header, before any trailer
  size_t served_ = 0;         ///< requests read on this connection
};

server::server(server_options options, handler dispatch, core::metrics& metrics)
    : options_(std::move(options)), dispatch_(std::move(dispatch)), metrics_(metrics) {
  const int n = std::max(1, options_.io_threads);
  for (int i = 0; i < n; ++i)
    contexts_.push_back(std::make_unique<net::io_context>(1));
}

server::~server() {
  stop();
}

void server::start() {
  auto& ctx = *contexts_.front();
  tcp::endpoint endpoint{net::ip::make_address(options_.bind_address), options_.port};
  acceptor_ = std::make_unique<tcp::acceptor>(ctx);
  beast::error_code ec;
  acceptor_->open(endpoint.protocol(), ec);
  if (!ec)
    acceptor_->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec)
    acceptor_->bind(endpoint, ec);
  if (!ec)
    acceptor_->listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + options_.bind_address + ":" +
                             std::to_string(options_.port) + ": " + ec.message());
  bound_port_ = acceptor_->local_endpoint().port();
  do_accept();
  for (auto& c : contexts_) {
    threads_.emplace_back([ctx = c.get()] {
      auto guard = net::make_work_guard(*ctx);
      ctx->run();
    });
  }
}

void server::do_accept() {
  auto& target = *contexts_[next_context_++ % contexts_.size()];
  acceptor_->async_accept(target, [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_->is_open())
      return;
    if (!ec) {
      auto s = std::make_shared<session>(std::move(socket), *this);
      {
        std::lock_guard<std::mutex> lock{sessions_mutex_};
        sessions_[s.get()] = s;
      }
      s->start();
    }
    do_accept();
  });
}

void server::forget(session* s) {
  std::lock_guard<std::mutex> lock{sessions_mutex_};
  sessions_.erase(s);
}

void server::stop_accepting() {
  if (!acceptor_)
    return;
  net::post(contexts_.front()->get_executor(), [this] {
    beast::error_code ec;
    acceptor_->close(ec);
  });
}

bool server::drain(std::chrono::milliseconds timeout) {
  draining_ = true;
  std::vector<std::shared_ptr<session>> live;
  {
    std::lock_guard<std::mutex> lock{sessions_mutex_};
    for (auto& entry : sessions_)
      if (auto s = entry.second.lock())
        live.push_back(std::move(s));
  }
  // Posted outside the lock: a session's destructor takes it too.
  for (auto& s : live)
    net::post(s->get_executor_for_drain(), [s] { s->on_drain(); });
  live.clear();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return in_flight_.load() == 0;
}

void server::stop() {
  if (stopped_)
    return;
  stopped_ = true;
  for (auto& c : contexts_)
    c->stop();
  for (auto& t : threads_)
    if (t.joinable())
      t.join();
  threads_.clear();
}

}  // namespace datahub::http
