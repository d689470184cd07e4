// Checks every request passes before routing (SPEC 3.2 step 1), and the extraction of the API
// key from its headers (step 3). Pure functions over the parsed request.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "http/exchange.hpp"

namespace datahub::http {

/// Splits the target into path and query and refuses what SPEC 3.2 refuses: a target that is
/// not origin-form, dot-segments, encoded slashes, dots or backslashes, a NUL (raw or
/// encoded), a raw backslash or control character. The path is kept byte for byte as received
/// (nothing is decoded or collapsed), so the path routing sees is the path forwarded.
/// Returns the error message when refused.
std::optional<std::string> check_target(std::string_view target, std::string& path,
                                        std::string& query);

/// What the request says about its API key.
struct credentials {
  enum class kind {
    none,      ///< neither header
    secret,    ///< one key (or the same key in both headers)
    conflict,  ///< two different keys
    invalid,   ///< a header is present but unusable (empty, `Basic`, nothing after `Bearer`)
  };
  kind what = kind::none;
  std::string secret;
  /// True when the key came (also) from Authorization: that header is then not forwarded.
  bool from_authorization = false;
};

/// Reads `X-API-Key` and `Authorization: Bearer` (scheme case-insensitive, surrounding
/// whitespace ignored). With `X-API-Key` present, `Authorization` is the key only when it holds
/// the same one; any other value (Basic credentials, a token for the upstream) is left to be
/// forwarded, and a different `dh_` key there is a conflict.
credentials extract_credentials(const request& req);

}  // namespace datahub::http
