#pragma once
// The body of one stream message (docs/architecture.md, "Cluster mode"): a
// group of checked appends, ingested atomically by every node, format 1:
//   format u8 (1) | varint zigzag(ts) | varint requests |
//   per request: bytes idempotency_key | bytes fingerprint | varint events |
//     per event: bytes type | bytes key | bytes subject | bytes data
// (varint and bytes as in core/coding.hpp). `ts` is the publisher's clock in
// milliseconds; nodes stamp max(ts, their last ts), the same on every node.
// Pure functions, safe from any thread.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <derive/append.hpp>
#include <derive/status.hpp>

namespace derive {

struct stream_message {
  int64_t ts = 0;
  std::vector<checked_append> group;
};

// The body of `group` stamped `ts`.
std::string encode_stream_message(const std::vector<checked_append>& group, int64_t ts);

// The message in `body`. Errors: corruption (a message this build cannot read).
result<stream_message> decode_stream_message(std::string_view body);

// The events the requests of `group` carry.
uint64_t event_count(const std::vector<checked_append>& group);

}  // namespace derive
