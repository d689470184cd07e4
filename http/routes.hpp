// The declarative routes file (SPEC 3.1): which upstream owns which path prefix. A table is
// immutable once loaded; a reload (SIGHUP) swaps in a new table atomically, or keeps the old
// one when the new file is bad.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace datahub::http {

struct upstream_target {
  std::string scheme = "http";
  std::string host;  ///< a literal address or a name resolved at connect time
  uint16_t port = 80;
  std::string base_path;  ///< prepended to the forwarded path; empty or `/x` without trailing `/`
  /// `host:port` (IPv6 hosts in brackets): the Host header sent upstream and the pool's key.
  std::string authority;
};

struct route {
  std::string name;         ///< also the metrics `path` label
  std::string path_prefix;  ///< starts with `/`
  upstream_target upstream;
  std::string upstream_url;  ///< as written in the file, for logs
  bool strip_prefix = false;
  std::vector<std::string> scopes;   ///< all required; empty: any valid key
  std::vector<std::string> methods;  ///< upper case; empty: all
  std::chrono::milliseconds timeout{30000};

  bool allows(std::string_view method) const;
};

class route_table {
 public:
  explicit route_table(std::vector<route> routes);

  /// The route with the longest prefix matching `path`, or nullptr.
  const route* match(std::string_view path) const;

  const std::vector<route>& routes() const { return routes_; }

 private:
  std::vector<route> routes_;  ///< sorted by prefix length, longest first
};

/// Parses a routes file. Either the table or one message per problem (naming the route and the
/// field).
std::variant<std::shared_ptr<const route_table>, std::vector<std::string>> load_routes(
    const std::string& path);

/// Parses routes from YAML text (used by load_routes and by tests).
std::variant<std::shared_ptr<const route_table>, std::vector<std::string>> parse_routes(
    const std::string& yaml_text);

/// The table in force; readers take a snapshot per request.
class route_holder {
 public:
  std::shared_ptr<const route_table> current() const {
    std::lock_guard<std::mutex> lock{mutex_};
    return table_;
  }
  void replace(std::shared_ptr<const route_table> table) {
    std::lock_guard<std::mutex> lock{mutex_};
    table_ = std::move(table);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const route_table> table_ = std::make_shared<route_table>(std::vector<route>{});
};

}  // namespace datahub::http
