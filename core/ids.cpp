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

  // 128 bits as 26 base32 digits (130 bits, the first two zero): digit i holds bits
  // [5i - 2, 5i + 3) of the byte string, counted from its most significant bit.
  std::string out;
  out.reserve(prefix.size() + 27);
  out.append(prefix).push_back('_');
  char digits[26];
  for (int i = 0; i < 26; ++i) {
    unsigned value = 0;
    for (int b = 5 * i - 2; b < 5 * i + 3; ++b) {
      const unsigned bit = b < 0 ? 0u : (bytes[static_cast<size_t>(b / 8)] >> (7 - b % 8)) & 1u;
      value = (value << 1) | bit;
    }
    digits[i] = crockford[value];
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
