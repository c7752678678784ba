#pragma once
// The rules of protocol.md's "Events" for <derive/event.hpp>: parsing events
// from JSON, validating them, and their idempotency fingerprint. Requests are
// checked through core/append_check.hpp, which uses these.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <derive/event.hpp>
#include <derive/status.hpp>

namespace derive {

// A parsed append body: one event or an array of 1..1000 events.
struct parsed_events {
  std::vector<event_input> events;
  bool was_array = false;
  // A fingerprint of the canonical JSON of `events` (whitespace and member
  // order do not matter), used to tell an idempotent retry from a reused key.
  // Empty when not asked for (an append without an Idempotency-Key).
  std::string fingerprint;
};

// Parses and validates an HTTP append body (protocol.md, "Events").
// Errors: invalid_json (not JSON), invalid_event (the message names the field
// and, for an array, the index; also a member name twice in one object and a
// number that would not be kept exactly, see core/json_check.hpp).
// `fingerprint`: compute parsed_events::fingerprint (only an append with an
// idempotency key needs it).
result<parsed_events> parse_events(std::string_view body, bool fingerprint = true);

// Validates an already parsed value: one event object or an array of them
// (used by parse_events and by the WebSocket `append` op). REQUIRES: the text
// it was parsed from passed check_json without an issue.
result<parsed_events> events_from_json(const nlohmann::json& value, bool fingerprint = true);

// Checks events built in code (the C++ API) by the same rules: 1..1000 events,
// each with a valid type, key and subject sizes, UTF-8 strings and JSON data.
// Errors: invalid_event naming the field ("event.type", "events[3].key").
status validate_inputs(const std::vector<event_input>& events);

// The fingerprint of valid `events`: that of the body
// [{"type","data"[,"key"][,"subject"]}, ...]. REQUIRES: validate_inputs passed.
std::string fingerprint_inputs(const std::vector<event_input>& events);

// Checks an Idempotency-Key: 1..128 visible ASCII characters (0x21..0x7e).
status validate_idempotency_key(std::string_view key);

}  // namespace derive
