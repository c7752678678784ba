#pragma once
// Request framing hygiene (docs/protocol.md, "Request framing"): header
// fields that an intermediary and this server could read differently, so
// that one connection's bytes would be split into requests in two ways
// (request smuggling). Checked on the raw header bytes, because Beast's
// parser unfolds obsolete line folding and keeps the last of repeated
// fields. Plain C++ (no Beast), so the fuzz target can call it.

#include <optional>
#include <string>
#include <string_view>

namespace derive::web {

// `raw_header`: the request line, the header fields and the empty line, as
// received (CRLF line ends). `version`: the request's HTTP version (10, 11).
// Returns what is wrong, as the message of a 400 bad_request, or nullopt:
// - a header line that starts with a space or a tab (obsolete line folding);
// - Transfer-Encoding other than exactly `chunked` (which is refused with 411
//   later), more than one Transfer-Encoding, or one with Content-Length;
// - no Host in HTTP/1.1, or more than one Host;
// - more than one Idempotency-Key.
std::optional<std::string> framing_problem(std::string_view raw_header, unsigned version);

}  // namespace derive::web
