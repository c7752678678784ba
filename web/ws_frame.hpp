#pragma once
// The server side of RFC 6455's framing: decoding what clients send and
// encoding what the server sends. No Beast types; pure functions and a
// decoder object with no I/O (web/websocket_session.cpp drives them over its
// socket). No extensions are negotiated (docs/protocol.md), so the reserved
// bits are always zero.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace derive::web {

enum class ws_opcode : uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

// The close codes the decoder fails with.
inline constexpr uint16_t ws_protocol_error = 1002;
inline constexpr uint16_t ws_invalid_payload = 1007;
inline constexpr uint16_t ws_message_too_big = 1009;

// Longest payload of a control frame (ping, pong, close).
inline constexpr size_t ws_max_control_payload = 125;

// What ws_decoder::decode found.
struct ws_event {
  enum class kind {
    need_more,  // nothing complete yet: call again with more bytes
    text,       // a whole text message (valid UTF-8) in `payload`
    binary,     // a whole binary message in `payload`
    ping,       // `payload`: the ping's payload (to be echoed in a pong)
    pong,
    close,      // `code`: the client's close code (0: none given); `payload`: its reason
    failed,     // the client broke the protocol: close with `code`, `payload` the reason
  };
  kind what = kind::need_more;
  uint16_t code = 0;
  std::string payload;
};

// Decodes the frames of one client connection, incrementally: the bytes may
// arrive split anywhere. Data frames' payloads are unmasked into the message
// being assembled as they arrive (the caller need not keep them); a control
// frame is decoded once it is whole (it is at most 131 bytes).
//
// Client frames must be masked; fragments of a message are continuation
// frames after a first text or binary frame; control frames are at most 125
// bytes, never fragmented, and may come between the fragments of a message.
// A failure is reported once, as kind::failed:
//   1002: reserved bits set, an unknown opcode, an unmasked frame, a
//         fragmented or oversized control frame, a continuation frame outside
//         a message or a new message inside one, a 64-bit length with its top
//         bit set, a close payload of one byte or with a code outside RFC
//         6455's (is_valid_client_close_code);
//   1007: a text message, or a close reason, that is not valid UTF-8;
//   1009: a message longer than the limit (its total over all fragments).
// After a 1002 (the stream can no longer be framed) or a close frame, every
// later byte is consumed and ignored. After a 1007 or 1009 decoding goes on
// (the rest of an oversized message is skipped), so that the caller, now
// closing, still sees the client's close frame.
class ws_decoder {
 public:
  // `max_message_bytes`: the longest message accepted.
  explicit ws_decoder(size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

  // Decodes from the start of `in` (bytes received and not yet consumed) up
  // to the first event. Sets `used` to the bytes of `in` consumed, which the
  // caller drops before the next call; with kind::need_more they may be
  // fewer than `in.size()` (a control frame or a header not yet whole).
  ws_event decode(std::string_view in, size_t& used);

  // True between messages: no part of a message is held.
  bool between_messages() const { return !in_message_ && !in_frame_; }

  // True once a close frame arrived (valid or not): nothing after it counts.
  bool close_received() const { return close_received_; }
  // True once nothing more is decoded (after a 1002 or a close frame): a
  // close frame the client sends later cannot be read.
  bool done() const { return done_; }

 private:
  ws_event fail(uint16_t code, std::string reason);
  ws_event finish_message();
  ws_event control_event(ws_opcode op, std::string payload);

  size_t max_message_bytes_;
  std::string message_;    // the message being assembled (unmasked)
  uint64_t remaining_ = 0;  // payload bytes of the current data frame still to come
  uint8_t mask_[4] = {};
  uint8_t mask_pos_ = 0;    // index into mask_ of the next payload byte
  bool in_frame_ = false;   // inside a data frame's payload
  bool frame_fin_ = false;  // the current data frame ends its message
  bool in_message_ = false;
  bool message_binary_ = false;
  bool skipping_ = false;   // discarding the rest of an oversized message
  bool done_ = false;       // after a 1002 or a close frame: ignore everything
  bool close_received_ = false;
};

// The header of an unmasked server frame with FIN set, for a payload of
// `payload_bytes` bytes (2, 4 or 10 bytes).
std::string ws_frame_header(ws_opcode op, uint64_t payload_bytes);

// A whole unmasked server frame (FIN set).
std::string ws_frame(ws_opcode op, std::string_view payload);

// A close frame with `code` and `reason` (cut to the 123 bytes a control
// frame has room for, at a UTF-8 character boundary). Code 0: no payload.
std::string ws_encode_close(uint16_t code, std::string_view reason);

// The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key:
// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
std::string ws_accept_key(std::string_view client_key);

// True when `key` is a valid Sec-WebSocket-Key: base64 of 16 bytes.
bool is_valid_ws_key(std::string_view key);

}  // namespace derive::web
