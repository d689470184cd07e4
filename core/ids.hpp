// Prefixed ULIDs (`key_01H5X4Y6Z8A9B0C1D2E3F4G5H6`): sortable by creation time, random enough to
// be unguessable. Domain layer; no I/O.
#pragma once

#include <string>
#include <string_view>

namespace datahub::core {

/// A new id: `prefix` + `_` + 26 Crockford base32 characters (48-bit ms time, 80 random bits).
std::string new_id(std::string_view prefix);

/// A new request id (`req_` + ULID) for the hot path: its 80 random bits come from a per-thread
/// generator seeded once from the OS, since a request id is a label, not a secret, and drawing
/// from OpenSSL's DRBG per request costs a system call. Ids of stored objects use new_id.
std::string new_request_id();

/// True when `id` is `prefix_` followed by a well-formed ULID.
bool is_valid_id(std::string_view prefix, std::string_view id);

}  // namespace datahub::core
