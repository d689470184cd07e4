// Path and credential rules.
#include "http/request_rules.hpp"

#include <cctype>

#include <boost/beast/core/string.hpp>

#include "core/text.hpp"

namespace datahub::http {

std::optional<std::string> check_target(std::string_view target, std::string& path,
                                        std::string& query) {
  if (target.empty() || target.front() != '/')
    return std::string{"Request target must be an absolute path"};
  const auto qpos = target.find('?');
  const auto raw_path = target.substr(0, qpos);
  const auto raw_query =
      qpos == std::string_view::npos ? std::string_view{} : target.substr(qpos + 1);

  for (size_t i = 0; i < raw_path.size(); ++i) {
    const auto c = static_cast<unsigned char>(raw_path[i]);
    if (c == '\\')
      return std::string{"Path must not contain a backslash"};
    if (c < 0x20 || c == 0x7f)
      return std::string{"Path must not contain control characters"};
    if (c == '%') {
      const int hi = i + 1 < raw_path.size() ? core::hex_digit_value(raw_path[i + 1]) : -1;
      const int lo = i + 2 < raw_path.size() ? core::hex_digit_value(raw_path[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        return std::string{"Path has a malformed percent-encoding"};
      const int decoded = hi * 16 + lo;
      if (decoded == '/' || decoded == '.' || decoded == '\\' || decoded == 0)
        return std::string{"Path must not contain encoded slashes, dots, backslashes or NUL"};
    }
  }
  // Dot-segments: "." or ".." between slashes (or at the end).
  size_t start = 1;
  while (start <= raw_path.size()) {
    auto end = raw_path.find('/', start);
    if (end == std::string_view::npos)
      end = raw_path.size();
    const auto segment = raw_path.substr(start, end - start);
    if (segment == "." || segment == "..")
      return std::string{"Path must not contain dot-segments"};
    start = end + 1;
  }
  for (unsigned char c : raw_query)
    if (c < 0x20 || c == 0x7f)
      return std::string{"Query must not contain control characters"};
  if (raw_query.find("%00") != std::string_view::npos)
    return std::string{"Query must not contain NUL"};
  path.assign(raw_path);
  query.assign(raw_query);
  return std::nullopt;
}

credentials extract_credentials(const request& req) {
  credentials out;
  std::optional<std::string_view> from_header;
  std::optional<std::string_view> from_auth;
  bool header_unusable = false;
  bool auth_unusable = false;

  if (req.find("X-API-Key") != req.end()) {
    const auto v = core::trim_ows(req["X-API-Key"]);
    if (v.empty())
      header_unusable = true;
    else
      from_header = v;
  }
  if (req.find(bh::field::authorization) != req.end()) {
    const auto v = core::trim_ows(req[bh::field::authorization]);
    const auto space = v.find(' ');
    const auto scheme = v.substr(0, space);
    const auto token =
        space == std::string_view::npos ? std::string_view{} : core::trim_ows(v.substr(space + 1));
    if (boost::beast::iequals(scheme, "Bearer") && !token.empty())
      from_auth = token;
    else
      auth_unusable = true;
  }

  if (from_header) {
    // X-API-Key names the key. Authorization may carry something else for the upstream (Basic
    // credentials, another service's token), which is forwarded untouched; only a second
    // DataHub-shaped key that differs is a conflict.
    const bool auth_is_a_key = from_auth && from_auth->rfind("dh_", 0) == 0;
    if (auth_is_a_key && *from_auth != *from_header) {
      out.what = credentials::kind::conflict;
      return out;
    }
    out.what = credentials::kind::secret;
    out.secret = std::string{*from_header};
    out.from_authorization = from_auth && *from_auth == *from_header;
    return out;
  }
  if (header_unusable) {
    out.what = credentials::kind::invalid;
    return out;
  }
  if (from_auth) {
    out.what = credentials::kind::secret;
    out.secret = std::string{*from_auth};
    out.from_authorization = true;
    return out;
  }
  out.what = auth_unusable ? credentials::kind::invalid : credentials::kind::none;
  return out;
}

}  // namespace datahub::http
