// Cryptographically secure random bytes from the operating system (OpenSSL's RAND_bytes).
#pragma once

#include <cstddef>
#include <cstdint>

namespace datahub::core {

/// Fills `out` with `n` random bytes; aborts the process if the OS source fails, since
/// continuing would hand out predictable secrets.
void random_bytes(uint8_t* out, size_t n);

}  // namespace datahub::core
