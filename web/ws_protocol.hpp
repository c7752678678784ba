#pragma once
// The WebSocket messages of protocol.md ("WebSocket: GET /v1/ws"): parsing
// what clients send and encoding what the server sends. No Beast types; pure
// functions, callable from any thread.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <derive/runtime.hpp>
#include "core/append_check.hpp"

namespace derive::web {

inline constexpr size_t max_id_chars = 64;
inline constexpr uint64_t default_wait_ms = 5000;
inline constexpr uint64_t max_wait_ms = 30000;

struct ws_subscribe {
  subscription_filter filter;
  std::optional<uint64_t> from;
};
struct ws_unsubscribe {};
struct ws_append {
  checked_append request;
};
struct ws_get {
  std::string view;
  std::string key;
  std::optional<uint64_t> after;
  std::chrono::milliseconds timeout{default_wait_ms};
};

// A token for the connection (docs/protocol.md, "auth"): the first one, or a
// renewal before the current one expires.
struct ws_auth {
  std::string token;
};

struct ws_request {
  std::string id;
  std::variant<ws_subscribe, ws_unsubscribe, ws_append, ws_get, ws_auth> op;
};

// A message that cannot be carried out, as the error to answer with.
struct ws_error {
  std::optional<std::string> id;  // nullopt: "id": null
  std::string code;
  std::string message;
};

// Parses one text message (already valid UTF-8). Errors: bad_message (not
// JSON, not an object, no known "op", no valid "id", a member name twice),
// invalid_parameter, invalid_event (also a member name twice or a number not
// kept exactly inside an append's "events"), invalid_idempotency_key.
std::variant<ws_request, ws_error> parse_ws_request(std::string_view text);

// Server messages.
std::string encode_ws_error(const std::optional<std::string>& id, std::string_view code,
                            std::string_view message);
std::string encode_ws_error(const std::optional<std::string>& id, const status& st);
// An error the client may retry after `retry_after_ms` (rate limits):
// {"op":"error",...,"retry_after_ms":N}.
std::string encode_ws_error(const std::optional<std::string>& id, std::string_view code,
                            std::string_view message, uint64_t retry_after_ms);
std::string encode_unsubscribed(const std::string& id);
std::string encode_appended(const std::string& id, const append_outcome& outcome);
std::string encode_value(const std::string& id, std::string_view key,
                         const std::optional<std::string>& value, uint64_t offset);
std::string encode_resumed(const std::string& id, uint64_t offset);
// {"op":"authenticated","id":..,"sub":..,"expires":<exp, seconds>}
std::string encode_authenticated(const std::string& id, std::string_view sub, int64_t expires);
// The snapshot of `items` at `offset` as one or more messages, each with at
// most `chunk_items` items and about `chunk_bytes` bytes (at least one item
// each); every message but the last has "more": true.
std::vector<std::string> encode_snapshot(const std::string& id, uint64_t offset,
                                         const std::vector<key_value>& items, bool reset,
                                         size_t chunk_items, size_t chunk_bytes);
// One snapshot message: `items` at `offset`, with "more": `more`.
std::string encode_snapshot_chunk(const std::string& id, uint64_t offset,
                                  const std::vector<key_value>& items, bool reset, bool more);
// {"op":"changes","id":<id>,"items":[  — the head of a changes batch; the
// items and "]}" follow.
std::string changes_prefix(const std::string& id);

// A change built by the server itself (from a view's changelog when a
// subscription resumes); its wire form comes from append_change_item, the
// hub's encoder too.
change_ptr make_change(uint64_t offset, std::string key, std::optional<std::string> value);

}  // namespace derive::web
