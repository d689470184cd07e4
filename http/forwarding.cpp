// Request and answer rewriting for the proxy, and the rate-limit header values.
#include "http/forwarding.hpp"

#include <array>
#include <charconv>

#include <boost/beast/core/string.hpp>

#include "core/text.hpp"

namespace datahub::http {

namespace {

constexpr std::array<std::string_view, 9> hop_by_hop_headers = {
    "Connection", "Keep-Alive",          "Proxy-Connection",  "TE", "Trailer", "Transfer-Encoding",
    "Upgrade",    "Proxy-Authorization", "Proxy-Authenticate"};

void append_number(std::string& out, int64_t value) {
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  (void)ec;
  out.append(digits, end);
}

void append_policy(std::string& out, const actors::window_state& window) {
  out += '"';
  out += window.name;
  out += "\";q=";
  append_number(out, window.limit);
  out += ";w=";
  append_number(out, window.window_seconds);
}

/// Headers the gateway sets itself on the upstream request; a client's copies are dropped.
bool replaced_upstream(std::string_view name) {
  static constexpr std::array<std::string_view, 9> replaced = {
      "Host",         "X-Forwarded-For",  "X-Forwarded-Proto", "X-Forwarded-Host",
      "X-Request-Id", "X-DataHub-Key-Id", "X-API-Key",         "Content-Length",
      "Expect"};
  for (auto r : replaced)
    if (boost::beast::iequals(name, r))
      return true;
  return false;
}

}  // namespace

bool is_hop_by_hop(std::string_view name) {
  for (auto h : hop_by_hop_headers)
    if (boost::beast::iequals(name, h))
      return true;
  return false;
}

bool named_in_connection(const bh::fields& message, std::string_view name) {
  const auto range = message.equal_range(bh::field::connection);
  for (auto it = range.first; it != range.second; ++it) {
    std::string_view list = it->value();
    while (!list.empty()) {
      const auto comma = list.find(',');
      const auto token = core::trim_ows(list.substr(0, comma));
      if (!token.empty() && boost::beast::iequals(token, name))
        return true;
      if (comma == std::string_view::npos)
        break;
      list.remove_prefix(comma + 1);
    }
  }
  return false;
}

std::string upstream_target_of(const route& r, std::string_view path, std::string_view query) {
  std::string_view rest = path;
  if (r.strip_prefix && rest.size() >= r.path_prefix.size() &&
      rest.compare(0, r.path_prefix.size(), r.path_prefix) == 0)
    rest.remove_prefix(r.path_prefix.size());

  std::string target;
  target.reserve(r.upstream.base_path.size() + rest.size() + query.size() + 2);
  target += r.upstream.base_path;
  if (rest.empty() || rest.front() != '/')
    target += '/';
  target += rest;
  if (!query.empty()) {
    target += '?';
    target += query;
  }
  return target;
}

request build_upstream_request(request& client, const route& r, std::string_view path,
                               std::string_view query, const forward_context& context) {
  request out;
  out.version(11);
  if (client.method() == bh::verb::unknown)
    out.method_string(client.method_string());
  else
    out.method(client.method());
  out.target(upstream_target_of(r, path, query));

  const bool has_connection = client.find(bh::field::connection) != client.end();
  for (const auto& field : client) {
    const auto name = field.name_string();
    if (is_hop_by_hop(name) || replaced_upstream(name))
      continue;
    if (context.key_in_authorization && field.name() == bh::field::authorization)
      continue;
    if (has_connection && named_in_connection(client, name))
      continue;
    if (field.name() == bh::field::unknown)
      out.insert(name, field.value());
    else
      out.insert(field.name(), field.value());
  }

  out.set(bh::field::host, r.upstream.authority);
  const auto client_host = client[bh::field::host];
  if (!client_host.empty())
    out.set("X-Forwarded-Host", client_host);
  out.set("X-Forwarded-Proto", "http");

  // X-Forwarded-For keeps the chain the client presented and appends the address we saw.
  std::string forwarded_for;
  const auto xff = client.equal_range("X-Forwarded-For");
  for (auto it = xff.first; it != xff.second; ++it) {
    const auto value = core::trim_ows(it->value());
    if (value.empty())
      continue;
    forwarded_for += value;
    forwarded_for += ", ";
  }
  forwarded_for += context.remote_ip;
  out.set("X-Forwarded-For", forwarded_for);

  out.set("X-Request-Id", context.request_id);
  out.set("X-DataHub-Key-Id", context.key_id);

  out.body() = std::move(client.body());
  client.body().clear();
  const auto size = out.body().size();
  const auto verb = out.method();
  if (size > 0 || verb == bh::verb::post || verb == bh::verb::put || verb == bh::verb::patch)
    out.content_length(size);
  out.keep_alive(true);
  return out;
}

void filter_response_headers(response& res) {
  const bool has_connection = res.find(bh::field::connection) != res.end();
  if (has_connection) {
    // Names listed in Connection first: the Connection header itself goes in the second pass.
    for (auto it = res.begin(); it != res.end();) {
      if (it->name() != bh::field::connection && named_in_connection(res, it->name_string()))
        it = res.erase(it);
      else
        ++it;
    }
  }
  for (auto it = res.begin(); it != res.end();) {
    if (is_hop_by_hop(it->name_string()))
      it = res.erase(it);
    else
      ++it;
  }
}

std::string rate_limit_policy_value(const actors::window_state& minute,
                                    const actors::window_state& hour) {
  std::string out;
  out.reserve(64);
  append_policy(out, minute);
  out += ", ";
  append_policy(out, hour);
  return out;
}

std::string rate_limit_value(const actors::window_state& window) {
  std::string out;
  out.reserve(40);
  out += '"';
  out += window.name;
  out += "\";r=";
  append_number(out, window.remaining);
  out += ";t=";
  append_number(out, window.reset_seconds);
  return out;
}

void set_rate_limit_headers(response& res, const actors::window_state& minute,
                            const actors::window_state& hour,
                            const actors::window_state& tightest) {
  res.set("RateLimit-Policy", rate_limit_policy_value(minute, hour));
  res.set("RateLimit", rate_limit_value(tightest));
  char digits[24];
  auto number = [&digits](int64_t value) {
    const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
    (void)ec;
    return std::string_view{digits, static_cast<size_t>(end - digits)};
  };
  res.set("X-RateLimit-Limit", number(tightest.limit));
  res.set("X-RateLimit-Remaining", number(tightest.remaining));
  res.set("X-RateLimit-Reset", number(tightest.reset_seconds));
}

}  // namespace datahub::http
