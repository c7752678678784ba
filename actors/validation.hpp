#pragma once
// Checks of append requests made through the C++ API (runtime::append and the
// sequencer handle), with the same rules as protocol.md's "Events" — the web
// layer has already checked its requests with parse_events, so these pass.

#include "core/log.hpp"
#include "core/status.hpp"

namespace derive {

// The shape of every event (type, key, subject, data) and the number of events
// (1..1000), by core's validate_inputs. Errors: invalid_event naming the field
// and index.
status validate_events(const append_request& request);

// Validates the idempotency key, if any (invalid_idempotency_key), and fills
// in request.fingerprint when a key comes without one.
// REQUIRES: validate_events(request) passed.
status prepare_idempotency(append_request& request);

}  // namespace derive
