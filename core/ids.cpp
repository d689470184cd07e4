// ULID generation: 48-bit millisecond time and 80 random bits. Ids sort by creation time to the
// millisecond; ids made in the same millisecond have no order among themselves.
#include "core/ids.hpp"

#include <algorithm>
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

uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// 48-bit millisecond time then 80 random bits, as 26 Crockford base32 digits behind the prefix.
std::string encode_ulid(std::string_view prefix, uint64_t ms, const uint8_t* random10) {
  std::array<uint8_t, 16> bytes{};
  for (int i = 0; i < 6; ++i)
    bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
  std::copy(random10, random10 + 10, bytes.begin() + 6);

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

// splitmix64: a small, fast generator, good enough to make request ids unique.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

std::string new_id(std::string_view prefix) {
  uint8_t random[10];
  random_bytes(random, sizeof random);
  return encode_ulid(prefix, now_ms(), random);
}

std::string new_request_id() {
  thread_local uint64_t state = [] {
    uint64_t seed = 0;
    random_bytes(reinterpret_cast<uint8_t*>(&seed), sizeof seed);
    return seed;
  }();
  const uint64_t a = splitmix64(state);
  const uint64_t b = splitmix64(state);
  uint8_t random[10];
  for (int i = 0; i < 8; ++i)
    random[i] = static_cast<uint8_t>(a >> (8 * i));
  random[8] = static_cast<uint8_t>(b);
  random[9] = static_cast<uint8_t>(b >> 8);
  return encode_ulid("req", now_ms(), random);
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
