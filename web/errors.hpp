#pragma once
// Errors on the wire (protocol.md, "Common rules", "Error codes"): one table
// from derive::errc to HTTP status and the error body
// {"error":{"code","message"}}; the codes that exist only in HTTP or only in
// WebSocket; one table of the WebSocket close frames the server sends.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <derive/status.hpp>

namespace derive::web {

// The HTTP status for an error code: the one table of the server.
unsigned http_status_for(errc code);

// {"error":{"code":"<code>","message":"<message>"}}
std::string error_body(std::string_view code, std::string_view message);
std::string error_body(const status& st);

// Codes that exist only in HTTP (not in derive::errc).
namespace http_code {
inline constexpr std::string_view bad_request = "bad_request";                // 400
// 401: no valid token where the rules need one (docs/security.md); also in
// WebSocket error messages.
inline constexpr std::string_view unauthorized = "unauthorized";
// 403: a foreign Origin, or a valid token the rules refuse (also WebSocket).
inline constexpr std::string_view forbidden = "forbidden";
inline constexpr std::string_view not_found = "not_found";                    // 404
inline constexpr std::string_view method_not_allowed = "method_not_allowed";  // 405
inline constexpr std::string_view length_required = "length_required";        // 411
inline constexpr std::string_view unsupported_media_type = "unsupported_media_type";  // 415
inline constexpr std::string_view upgrade_required = "upgrade_required";      // 426
inline constexpr std::string_view header_too_large = "header_too_large";      // 431
inline constexpr std::string_view tls_required = "tls_required";              // 400
inline constexpr std::string_view host_not_allowed = "host_not_allowed";      // 421
inline constexpr std::string_view rate_limited = "rate_limited";              // 429
inline constexpr std::string_view too_many_idempotency_keys = "too_many_idempotency_keys";  // 429
inline constexpr std::string_view too_many_connections = "too_many_connections";  // 503
// 503: a large response over max_unsent_response_bytes (with Retry-After).
inline constexpr std::string_view overloaded = "overloaded";
}  // namespace http_code

// Codes that exist only in WebSocket `error` messages (not in derive::errc).
namespace ws_code {
inline constexpr std::string_view bad_message = "bad_message";
inline constexpr std::string_view duplicate_id = "duplicate_id";
inline constexpr std::string_view unknown_subscription = "unknown_subscription";
inline constexpr std::string_view too_many_subscriptions = "too_many_subscriptions";
// The connection's token expired: sent for each subscription it ends.
inline constexpr std::string_view token_expired = "token_expired";
}  // namespace ws_code

// Why the server closes a WebSocket connection.
enum class ws_close {
  shutting_down,    // server::stop()
  no_pong,          // nothing arrived within pong_timeout after a ping
  binary_message,   // the client sent a binary message
  invalid_utf8,     // a text message (or a close reason) is not UTF-8
  stalled_reader,   // a write made no progress for stalled_write_timeout
  message_too_big,  // a message passed max_message_bytes
  bad_close_code,   // the client's close frame has a code outside RFC 6455's ranges
  slow_message,     // a message begun did not arrive whole within idle_timeout
};

// Close codes a client may send (RFC 6455, 7.4): 1000-1003, 1007-1011 and
// 3000-4999. Beast 1.81 refuses the reserved ones itself, but accepts 1012,
// 1013 and 5000 and above.
bool is_valid_client_close_code(uint16_t code);

struct ws_close_frame {
  uint16_t code = 0;
  std::string reason;
};

// The close frame for `why` (protocol.md, "Close frames the server sends"):
// the one table of the server's close codes and reasons. `max_message_bytes`
// is the limit that message_too_big's reason names.
ws_close_frame ws_close_frame_for(ws_close why, size_t max_message_bytes = 0);

}  // namespace derive::web
