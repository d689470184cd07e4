// Every atom and message type the actors layer exchanges, in one place. Message types that carry
// callbacks or shared records are allowed as unsafe (local-only) CAF message types at the end.
#pragma once

#include <memory>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include "core/api_key.hpp"

namespace datahub::actors {

/// A key actor: check (and count) one request.
using admit_atom = caf::atom_constant<caf::atom("admit")>;
/// A key actor: a newer record of its key.
using update_atom = caf::atom_constant<caf::atom("update")>;
/// A key actor: the result of looking its key up.
using loaded_atom = caf::atom_constant<caf::atom("loaded")>;
/// Periodic wake-ups (idle checks, polls, flushes).
using tick_atom = caf::atom_constant<caf::atom("tick")>;
/// The registry's helper: answer a request without a key actor.
using answer_atom = caf::atom_constant<caf::atom("answer")>;
/// The registry's helper: several admission requests, to hand to their key actors.
using batch_atom = caf::atom_constant<caf::atom("batch")>;

/// An immutable key record, shared by the cache and the key's actor.
using key_record = std::shared_ptr<const core::api_key>;

class pending_admit;
/// A request in flight; see key_actor.hpp for the exactly-once guarantee.
using admit_ptr = std::shared_ptr<pending_admit>;

struct admission_batch_holder;
/// Requests made together (key_registry::admit_all); a request the batch still holds when it is
/// destroyed (its message was dropped) is answered `unavailable`.
using admission_batch = std::shared_ptr<admission_batch_holder>;

/// The outcome of looking a key up by hash.
struct load_outcome {
  enum class kind {
    found,    ///< `key` is set
    unknown,  ///< no key has this hash
    failed,   ///< the lookup failed (PostgreSQL unreachable, timeout)
  };
  kind result = kind::failed;
  key_record key;
};

}  // namespace datahub::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(datahub::actors::key_record)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(datahub::actors::admit_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(datahub::actors::load_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(datahub::actors::admission_batch)
