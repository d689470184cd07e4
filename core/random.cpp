// OS randomness through OpenSSL.
#include "core/random.hpp"

#include <cstdio>
#include <cstdlib>

#include <openssl/rand.h>

namespace datahub::core {

void random_bytes(uint8_t* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) {
    std::fputs("fatal: the system's random source failed\n", stderr);
    std::abort();
  }
}

}  // namespace datahub::core
