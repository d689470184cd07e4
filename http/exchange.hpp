// One request in flight between the session that read it and whatever answers it. Handlers
// take an exchange and answer through `respond`, from any thread, exactly once.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "http/api_error.hpp"

namespace datahub::http {

namespace bh = boost::beast::http;
using request = bh::request<bh::string_body>;
using response = bh::response<bh::string_body>;

class exchange : public std::enable_shared_from_this<exchange> {
 public:
  using sink = std::function<void(std::shared_ptr<exchange>, response)>;

  exchange(request req, boost::asio::any_io_executor executor, sink on_response)
      : req(std::move(req)), executor(std::move(executor)), sink_(std::move(on_response)) {}

  request req;
  boost::asio::any_io_executor executor;  ///< the session's: answers are delivered there
  std::string request_id;
  std::string remote_ip;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  /// The metrics `path` label: a route's name or an admin path template.
  std::string path_label = "unmatched";
  /// Set once the request's key is known, for the log line.
  std::string key_id;
  /// The request's path (without query) as checked by the path rules.
  std::string path;
  std::string query;
  /// Released with the exchange; the server counts requests in flight by it.
  std::shared_ptr<void> in_flight_token;

  /// Delivers the answer to the session. Thread-safe; calls after the first are ignored.
  void respond(response res) {
    if (answered_.exchange(true))
      return;
    // Moved out: the sink holds the session, which must not outlive the answer through us.
    auto deliver = std::move(sink_);
    deliver(shared_from_this(), std::move(res));
  }

  /// Answers with the gateway's JSON error format; extra headers may be set by `decorate`.
  void fail(const api_error& error, const std::function<void(response&)>& decorate = {});

  /// Answers with a JSON body.
  void reply_json(bh::status status, std::string body);

  bool answered() const { return answered_.load(); }

 private:
  sink sink_;
  std::atomic<bool> answered_{false};
};

using handler = std::function<void(std::shared_ptr<exchange>)>;

}  // namespace datahub::http
