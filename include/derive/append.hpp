#pragma once
// Append requests and their outcomes (protocol.md, "Appending", "Idempotency").

#include <cstdint>
#include <string>
#include <vector>

#include <derive/event.hpp>
#include <derive/status.hpp>

namespace derive {

// One request: its events, appended atomically at consecutive offsets.
struct append_request {
  std::vector<event_input> events;
  std::string idempotency_key;  // empty: none
};

struct append_outcome {
  uint64_t first_offset = 0;  // offsets are first_offset .. first_offset + count - 1
  uint64_t count = 0;
  bool replayed = false;  // an idempotent retry: nothing was appended
};

// A request that passed protocol.md's checks: 1..1000 events of valid shape,
// a valid idempotency key or none, and, with a key, the fingerprint that tells
// a retry from a reused key. Only core's checks make one (check_append here,
// the HTTP and WebSocket parsers in the server), so holding one proves the
// checks ran; the runtime and the log do not check again.
class checked_append {
 public:
  const std::vector<event_input>& events() const { return events_; }
  const std::string& idempotency_key() const { return idempotency_key_; }
  // The fingerprint of the canonical JSON of the events; empty without a key.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  friend struct checked_append_access;  // core's checks
  checked_append() = default;
  std::vector<event_input> events_;
  std::string idempotency_key_;
  std::string fingerprint_;
};

// Checks a request built in code by the rules of protocol.md.
// Errors: invalid_event naming the field and index ("events[3].key"),
// invalid_idempotency_key.
result<checked_append> check_append(append_request request);

}  // namespace derive
