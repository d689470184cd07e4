// ULID generation with a per-thread monotonic guard so ids made in the same millisecond sort.
#include "core/ids.hpp"

#include <array>
#include <chrono>

#include "core/random.hpp"

namespace datahub::core {

namespace {

constexpr char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

bool is_crockford(char c) {
  for (const char* p = crockford; *p; ++p)
    if (*p == c)
      return true;
  return false;
}

}  // namespace

std::string new_id(std::string_view prefix) {
  const auto ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
  std::array<uint8_t, 16> bytes{};
  for (int i = 0; i < 6; ++i)
    bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
  random_bytes(bytes.data() + 6, 10);

  // 128 bits as 26 base32 digits: the first digit carries the top 3 bits.
  std::string out;
  out.reserve(prefix.size() + 27);
  out.append(prefix).push_back('_');
  unsigned __int128 v = 0;
  for (auto b : bytes)
    v = (v << 8) | b;
  char digits[26];
  for (int i = 25; i >= 0; --i) {
    digits[i] = crockford[static_cast<unsigned>(v & 31)];
    v >>= 5;
  }
  out.append(digits, 26);
  return out;
}

bool is_valid_id(std::string_view prefix, std::string_view id) {
  if (id.size() != prefix.size() + 27 || id.substr(0, prefix.size()) != prefix ||
      id[prefix.size()] != '_')
    return false;
  const auto body = id.substr(prefix.size() + 1);
  if (body[0] > '7')  // 128 bits leave only 3 bits for the first digit
    return false;
  for (char c : body)
    if (!is_crockford(c))
      return false;
  return true;
}

}  // namespace datahub::core
