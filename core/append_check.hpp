#pragma once
// Checking append requests once, where they enter (protocol.md, "Events",
// "Idempotency"). The HTTP body, the WebSocket `append` op and requests built
// in code all end as a checked_append (<derive/append.hpp>), which the runtime
// and the log trust without checking again.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <derive/append.hpp>

namespace derive {

// JSON nested deeper than this is refused before it is parsed.
inline constexpr size_t max_json_depth = 256;

// The only maker of checked_append: used by the checks below.
struct checked_append_access {
  static checked_append make(std::vector<event_input> events, std::string idempotency_key,
                             std::string fingerprint);
};

// The bytes of a group of checked requests, as the log's journal and a
// cluster's stream messages carry them: the count, then per request its
// idempotency key, fingerprint and events (type, key, subject, data), each
// length-prefixed. get_requests decodes them from the front of `in` (and
// consumes them); false: they do not decode (group holds what did).
void put_requests(std::string& out, const std::vector<checked_append>& group);
bool get_requests(std::string_view& in, std::vector<checked_append>& group);

// A checked request and the shape it came in (one event or an array).
struct parsed_append {
  checked_append request;
  bool was_array = false;
};

// An HTTP append: `body` is one event object or an array of 1..1000;
// `idempotency_key` nullopt: none (an empty one is invalid). Checked in this order: the key
// (invalid_idempotency_key), nesting (invalid_json), JSON (invalid_json), the
// events (invalid_event naming the field and index).
result<parsed_append> parse_append(std::string_view body,
                                   std::optional<std::string> idempotency_key);

// A WebSocket append: `events` is the message's parsed "events" member.
// Errors: invalid_event, then invalid_idempotency_key.
result<parsed_append> append_from_json(const nlohmann::json& events,
                                       std::optional<std::string> idempotency_key);

}  // namespace derive
