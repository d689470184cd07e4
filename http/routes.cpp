// Routes file parsing and validation (SPEC 3.1). Every problem in the file is reported, one
// message each, naming the route and the field, so an operator fixes a file in one pass. A file
// with any problem loads nothing: the caller keeps the routes already in force.
#include "http/routes.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>
#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/string.hpp>

#include "http/request_rules.hpp"

namespace datahub::http {

namespace {

constexpr int64_t max_timeout_ms = 600000;
constexpr size_t max_name_length = 64;
constexpr size_t max_prefix_length = 1024;
constexpr size_t max_scope_length = 100;

/// Paths the gateway answers itself; a route may neither cover nor hide inside them.
constexpr std::array<std::string_view, 4> reserved_prefixes = {"/api/v1/keys", "/api/v1/webhooks",
                                                               "/health", "/metrics"};

constexpr std::array<std::string_view, 7> known_methods = {"GET",   "HEAD",   "POST",   "PUT",
                                                           "PATCH", "DELETE", "OPTIONS"};

/// The metrics label of unmatched paths; a route of that name would blur the two.
constexpr std::string_view unmatched_label = "unmatched";

constexpr std::array<std::string_view, 7> route_fields = {
    "name", "path_prefix", "upstream", "strip_prefix", "scopes", "methods", "timeout_ms"};

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > max_name_length)
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

bool valid_scope(std::string_view scope) {
  if (scope.empty() || scope.size() > max_scope_length)
    return false;
  return std::all_of(scope.begin(), scope.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':' || c == '.' || c == '_' ||
           c == '-';
  });
}

bool visible_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

/// Checks a path as the request rules would check a request path; nullopt when fine.
std::optional<std::string> check_path(std::string_view path) {
  if (!visible_ascii(path))
    return std::string{"must contain only visible ASCII characters"};
  if (path.find('?') != std::string_view::npos || path.find('#') != std::string_view::npos)
    return std::string{"must not contain '?' or '#'"};
  std::string p;
  std::string q;
  if (auto problem = check_target(path, p, q)) {
    std::string out = *problem;
    out[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[0])));
    return out;
  }
  return std::nullopt;
}

/// Parses `http://host[:port][/base]`; the error names what is wrong.
std::variant<upstream_target, std::string> parse_upstream(std::string_view url) {
  constexpr std::string_view http_scheme = "http://";
  constexpr std::string_view https_scheme = "https://";
  if (starts_with(url, https_scheme) ||
      (url.size() >= https_scheme.size() &&
       boost::beast::iequals(url.substr(0, https_scheme.size()), https_scheme)))
    return std::string{"https upstreams are not supported; use an http:// URL"};
  if (url.size() < http_scheme.size() ||
      !boost::beast::iequals(url.substr(0, http_scheme.size()), http_scheme))
    return std::string{"must be an http://host[:port][/path] URL"};
  if (!visible_ascii(url))
    return std::string{"must not contain spaces or control characters"};
  auto rest = url.substr(http_scheme.size());
  if (rest.find_first_of("?#@") != std::string_view::npos)
    return std::string{"must not contain a query, a fragment or user information"};

  const auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  auto path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);

  upstream_target target;
  std::string_view port_text;
  bool ipv6 = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos)
      return std::string{"has an unterminated IPv6 address"};
    target.host.assign(authority.substr(1, close - 1));
    boost::system::error_code ec;
    boost::asio::ip::make_address_v6(target.host, ec);
    if (ec)
      return std::string{"has an invalid IPv6 address"};
    ipv6 = true;
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return std::string{"has characters after the IPv6 address"};
      port_text = after.substr(1);
      if (port_text.empty())
        return std::string{"has an empty port"};
    }
  } else {
    const auto colon = authority.find(':');
    const auto host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty())
        return std::string{"has an empty port"};
    }
    if (host.empty())
      return std::string{"has no host"};
    if (host.size() > 253)
      return std::string{"has a host name longer than 253 characters"};
    const bool host_ok = std::all_of(host.begin(), host.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '-';
    });
    if (!host_ok)
      return std::string{"has an invalid host name"};
    target.host.reserve(host.size());
    for (char c : host)
      target.host += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (!port_text.empty()) {
    unsigned port = 0;
    const auto* end = port_text.data() + port_text.size();
    const auto [ptr, ec] = std::from_chars(port_text.data(), end, port);
    if (ec != std::errc{} || ptr != end || port == 0 || port > 65535)
      return std::string{"has an invalid port (1 to 65535)"};
    target.port = static_cast<uint16_t>(port);
  }

  while (!path.empty() && path.back() == '/')
    path.remove_suffix(1);
  if (!path.empty()) {
    if (auto problem = check_path(path))
      return "path " + *problem;
    target.base_path.assign(path);
  }
  target.authority = ipv6 ? "[" + target.host + "]" : target.host;
  target.authority += ':';
  target.authority += std::to_string(target.port);
  return target;
}

/// Collects the messages of one route, each prefixed with the route's index and name.
class problems {
 public:
  explicit problems(std::vector<std::string>& out) : out_(out) {}

  void set_route(size_t index, std::string name) {
    where_ = "route " + std::to_string(index);
    if (!name.empty())
      where_ += " (" + name + ")";
  }
  void add(std::string_view field, std::string_view message) {
    std::string line = where_;
    line += ": ";
    line += field;
    line += ' ';
    line += message;
    out_.push_back(std::move(line));
  }

 private:
  std::vector<std::string>& out_;
  std::string where_;
};

std::optional<std::string> scalar_string(const YAML::Node& node) {
  if (!node.IsScalar())
    return std::nullopt;
  return node.Scalar();
}

/// A list of strings; nullopt when the node is not a list of scalars.
std::optional<std::vector<std::string>> string_list(const YAML::Node& node) {
  if (node.IsNull())
    return std::vector<std::string>{};
  if (!node.IsSequence())
    return std::nullopt;
  std::vector<std::string> out;
  for (const auto& item : node) {
    if (!item.IsScalar())
      return std::nullopt;
    out.push_back(item.Scalar());
  }
  return out;
}

/// The name of a route node, as far as it can be read, for messages about other fields.
std::string readable_name(const YAML::Node& node) {
  if (!node.IsMap() || !node["name"])
    return {};
  auto name = scalar_string(node["name"]);
  return name && valid_name(*name) ? *name : std::string{};
}

std::optional<route> parse_route(const YAML::Node& node, problems& report) {
  if (!node.IsMap()) {
    report.add("route", "must be a mapping of fields");
    return std::nullopt;
  }
  bool ok = true;
  auto bad = [&](std::string_view field, std::string_view message) {
    report.add(field, message);
    ok = false;
  };
  route r;

  for (const auto& entry : node) {
    const auto key = scalar_string(entry.first);
    if (!key || std::find(route_fields.begin(), route_fields.end(), *key) == route_fields.end())
      bad(key ? *key : std::string{"(non-scalar key)"},
          "is not a known field (name, path_prefix, upstream, strip_prefix, scopes, methods, "
          "timeout_ms)");
  }

  if (!node["name"]) {
    bad("name", "is required");
  } else if (auto name = scalar_string(node["name"]); !name || !valid_name(*name)) {
    bad("name", "must be 1 to 64 characters of a-z, 0-9, '_' and '-'");
  } else if (*name == unmatched_label) {
    bad("name", "must not be \"unmatched\", the metrics label of unrouted paths");
  } else {
    r.name = *name;
  }

  if (!node["path_prefix"]) {
    bad("path_prefix", "is required");
  } else if (auto prefix = scalar_string(node["path_prefix"]);
             !prefix || prefix->empty() || prefix->front() != '/') {
    bad("path_prefix", "must start with '/'");
  } else if (prefix->size() > max_prefix_length) {
    bad("path_prefix", "must be at most 1024 characters");
  } else if (auto problem = check_path(*prefix)) {
    bad("path_prefix", *problem);
  } else {
    bool shadows = false;
    for (auto reserved : reserved_prefixes) {
      if (starts_with(reserved, *prefix) || starts_with(*prefix, reserved)) {
        bad("path_prefix", "\"" + *prefix + "\" overlaps the gateway's own path \"" +
                               std::string{reserved} + "\"");
        shadows = true;
        break;
      }
    }
    if (!shadows)
      r.path_prefix = *prefix;
  }

  if (!node["upstream"]) {
    bad("upstream", "is required");
  } else if (auto url = scalar_string(node["upstream"]); !url) {
    bad("upstream", "must be a URL string");
  } else {
    auto parsed = parse_upstream(*url);
    if (auto* message = std::get_if<std::string>(&parsed)) {
      bad("upstream", "\"" + *url + "\" " + *message);
    } else {
      r.upstream = std::move(std::get<upstream_target>(parsed));
      r.upstream_url = *url;
    }
  }

  if (node["strip_prefix"]) {
    try {
      r.strip_prefix = node["strip_prefix"].as<bool>();
    } catch (const YAML::Exception&) {
      bad("strip_prefix", "must be true or false");
    }
  }

  if (node["scopes"]) {
    auto scopes = string_list(node["scopes"]);
    if (!scopes) {
      bad("scopes", "must be a list of strings");
    } else {
      for (auto& scope : *scopes) {
        if (!valid_scope(scope))
          bad("scopes", "entry \"" + scope +
                            "\" must be 1 to 100 characters of a-z, 0-9, ':', "
                            "'.', '_' and '-'");
        else if (std::find(r.scopes.begin(), r.scopes.end(), scope) == r.scopes.end())
          r.scopes.push_back(std::move(scope));
      }
    }
  }

  if (node["methods"]) {
    auto methods = string_list(node["methods"]);
    if (!methods) {
      bad("methods", "must be a list of strings");
    } else {
      for (auto& method : *methods) {
        std::string upper;
        for (char c : method)
          upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (std::find(known_methods.begin(), known_methods.end(), upper) == known_methods.end())
          bad("methods", "entry \"" + method +
                             "\" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
        else if (std::find(r.methods.begin(), r.methods.end(), upper) == r.methods.end())
          r.methods.push_back(std::move(upper));
      }
    }
  }

  if (node["timeout_ms"]) {
    int64_t ms = 0;
    bool parsed = false;
    try {
      ms = node["timeout_ms"].as<int64_t>();
      parsed = true;
    } catch (const YAML::Exception&) {
    }
    if (!parsed || ms < 1 || ms > max_timeout_ms)
      bad("timeout_ms", "must be an integer from 1 to 600000");
    else
      r.timeout = std::chrono::milliseconds{ms};
  }

  if (!ok)
    return std::nullopt;
  return r;
}

}  // namespace

bool route::allows(std::string_view method) const {
  if (methods.empty())
    return true;
  return std::find(methods.begin(), methods.end(), method) != methods.end();
}

route_table::route_table(std::vector<route> routes) : routes_(std::move(routes)) {
  std::stable_sort(routes_.begin(), routes_.end(), [](const route& a, const route& b) {
    return a.path_prefix.size() > b.path_prefix.size();
  });
}

const route* route_table::match(std::string_view path) const {
  for (const auto& r : routes_)
    if (starts_with(path, r.path_prefix))
      return &r;
  return nullptr;
}

std::variant<std::shared_ptr<const route_table>, std::vector<std::string>> parse_routes(
    const std::string& yaml_text) {
  std::vector<std::string> errors;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    errors.push_back(std::string{"routes file is not valid YAML: "} + e.what());
    return errors;
  }
  if (!root.IsMap() || !root["routes"]) {
    errors.emplace_back("routes file must be a mapping with a `routes` list");
    return errors;
  }
  for (const auto& entry : root) {
    const auto key = scalar_string(entry.first);
    if (!key || *key != "routes")
      errors.push_back("routes file: top-level field " + (key ? *key : std::string{"?"}) +
                       " is not known (only `routes`)");
  }
  const auto list = root["routes"];
  if (!list.IsSequence() && !list.IsNull()) {
    errors.emplace_back("routes file: `routes` must be a list");
    return errors;
  }

  std::vector<route> routes;
  std::set<std::string> names;
  std::set<std::string> prefixes;
  problems report{errors};
  size_t index = 0;
  for (const auto& node : list) {
    report.set_route(index, readable_name(node));
    if (auto r = parse_route(node, report)) {
      const bool name_is_new = names.insert(r->name).second;
      const bool prefix_is_new = prefixes.insert(r->path_prefix).second;
      if (!name_is_new)
        report.add("name", "\"" + r->name + "\" is used by an earlier route");
      if (!prefix_is_new)
        report.add("path_prefix", "\"" + r->path_prefix + "\" is used by an earlier route");
      if (name_is_new && prefix_is_new)
        routes.push_back(std::move(*r));
    } else if (auto name = readable_name(node); !name.empty()) {
      // Still reserve the name, so a later route reusing a broken route's name is reported too.
      names.insert(name);
    }
    ++index;
  }
  if (!errors.empty())
    return errors;
  return std::make_shared<const route_table>(std::move(routes));
}

std::variant<std::shared_ptr<const route_table>, std::vector<std::string>> load_routes(
    const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return std::vector<std::string>{"cannot read routes file " + path};
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return std::vector<std::string>{"cannot read routes file " + path};
  return parse_routes(text.str());
}

}  // namespace datahub::http
