#include "web/ws_frame.hpp"

#include <algorithm>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "core/json_text.hpp"
#include "web/errors.hpp"

namespace derive::web {
namespace {

constexpr uint8_t fin_bit = 0x80;
constexpr uint8_t reserved_bits = 0x70;
constexpr uint8_t opcode_bits = 0x0f;
constexpr uint8_t mask_bit = 0x80;
constexpr uint8_t length_bits = 0x7f;

bool is_control(uint8_t op) { return op & 0x8; }

bool is_known_opcode(uint8_t op) {
  switch (static_cast<ws_opcode>(op)) {
    case ws_opcode::continuation:
    case ws_opcode::text:
    case ws_opcode::binary:
    case ws_opcode::close:
    case ws_opcode::ping:
    case ws_opcode::pong: return true;
  }
  return false;
}

uint8_t byte_at(std::string_view s, size_t i) { return static_cast<uint8_t>(s[i]); }

// A frame's header, once whole.
struct frame_header {
  uint8_t first = 0;  // FIN, reserved bits, opcode
  bool masked = false;
  uint64_t length = 0;
  uint8_t mask[4] = {};
  size_t size = 0;  // bytes of the header
};

// The header at the start of `in`; size 0 when it is not whole yet.
frame_header parse_header(std::string_view in) {
  frame_header h;
  if (in.size() < 2) return h;
  h.first = byte_at(in, 0);
  h.masked = byte_at(in, 1) & mask_bit;
  uint64_t len = byte_at(in, 1) & length_bits;
  size_t pos = 2;
  size_t ext = len == 126 ? 2 : len == 127 ? 8 : 0;
  if (in.size() < pos + ext) return h;
  if (ext) {
    len = 0;
    for (size_t i = 0; i < ext; ++i) len = (len << 8) | byte_at(in, pos + i);
    pos += ext;
  }
  if (h.masked) {
    if (in.size() < pos + 4) return h;
    for (size_t i = 0; i < 4; ++i) h.mask[i] = byte_at(in, pos + i);
    pos += 4;
  }
  h.length = len;
  h.size = pos;
  return h;
}

// Appends `n` bytes of `in` unmasked with `mask`, starting at mask index `pos`.
void append_unmasked(std::string& out, const char* in, size_t n, const uint8_t mask[4],
                     uint8_t& pos) {
  size_t start = out.size();
  out.append(in, n);
  for (size_t i = start; i < out.size(); ++i) {
    out[i] = static_cast<char>(static_cast<uint8_t>(out[i]) ^ mask[pos]);
    pos = (pos + 1) & 3;
  }
}

}  // namespace

ws_event ws_decoder::fail(uint16_t code, std::string reason) {
  message_.clear();
  message_.shrink_to_fit();
  if (code == ws_protocol_error) done_ = true;
  return {ws_event::kind::failed, code, std::move(reason)};
}

ws_event ws_decoder::decode(std::string_view in, size_t& used) {
  used = 0;
  if (done_) {
    used = in.size();
    return {};
  }
  for (;;) {
    if (!in_frame_) {
      auto h = parse_header(in.substr(used));
      if (h.size == 0) return {};
      uint8_t op = h.first & opcode_bits;
      bool fin = h.first & fin_bit;
      if (h.first & reserved_bits) return fail(ws_protocol_error, "reserved bits are set");
      if (!is_known_opcode(op)) return fail(ws_protocol_error, "unknown opcode");
      if (!h.masked) return fail(ws_protocol_error, "client frames must be masked");
      if (h.length >> 63) return fail(ws_protocol_error, "the frame length's top bit is set");
      if (is_control(op)) {
        if (!fin) return fail(ws_protocol_error, "a control frame is fragmented");
        if (h.length > ws_max_control_payload) {
          return fail(ws_protocol_error, "a control frame is longer than 125 bytes");
        }
        if (in.size() - used < h.size + h.length) return {};  // not whole yet
        std::string payload;
        uint8_t pos = 0;
        append_unmasked(payload, in.data() + used + h.size, h.length, h.mask, pos);
        used += h.size + h.length;
        return control_event(static_cast<ws_opcode>(op), std::move(payload));
      }
      bool continuation = op == static_cast<uint8_t>(ws_opcode::continuation);
      if (continuation && !in_message_) {
        return fail(ws_protocol_error, "a continuation frame outside a message");
      }
      if (!continuation && in_message_) {
        return fail(ws_protocol_error, "a new message before the previous one ended");
      }
      used += h.size;
      if (!continuation) message_binary_ = op == static_cast<uint8_t>(ws_opcode::binary);
      in_message_ = true;
      in_frame_ = true;
      frame_fin_ = fin;
      remaining_ = h.length;
      std::copy(h.mask, h.mask + 4, mask_);
      mask_pos_ = 0;
      if (!skipping_ && h.length > max_message_bytes_ - std::min(max_message_bytes_,
                                                                  message_.size())) {
        skipping_ = true;
        return fail(ws_message_too_big, "");
      }
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - used));
    if (!skipping_) append_unmasked(message_, in.data() + used, n, mask_, mask_pos_);
    used += n;
    remaining_ -= n;
    if (remaining_ > 0) return {};
    in_frame_ = false;
    if (!frame_fin_) continue;
    in_message_ = false;
    if (skipping_) {
      skipping_ = false;
      continue;
    }
    return finish_message();
  }
}

ws_event ws_decoder::finish_message() {
  std::string msg = std::move(message_);
  message_ = std::string();
  if (message_binary_) return {ws_event::kind::binary, 0, std::move(msg)};
  if (!is_valid_utf8(msg)) return fail(ws_invalid_payload, "");
  return {ws_event::kind::text, 0, std::move(msg)};
}

ws_event ws_decoder::control_event(ws_opcode op, std::string payload) {
  if (op == ws_opcode::ping) return {ws_event::kind::ping, 0, std::move(payload)};
  if (op == ws_opcode::pong) return {ws_event::kind::pong, 0, std::move(payload)};
  // A close frame: nothing after it counts, whatever it holds.
  close_received_ = true;
  done_ = true;
  if (payload.empty()) return {ws_event::kind::close, 0, {}};
  if (payload.size() == 1) {
    return fail(ws_protocol_error, "a close frame's payload is a two-byte code and a reason");
  }
  auto code = static_cast<uint16_t>((byte_at(payload, 0) << 8) | byte_at(payload, 1));
  if (!is_valid_client_close_code(code)) {
    return fail(ws_protocol_error, ws_close_frame_for(ws_close::bad_close_code).reason);
  }
  std::string reason = payload.substr(2);
  if (!is_valid_utf8(reason)) return fail(ws_invalid_payload, "the close reason is not UTF-8");
  return {ws_event::kind::close, code, std::move(reason)};
}

std::string ws_frame_header(ws_opcode op, uint64_t payload_bytes) {
  std::string h(1, static_cast<char>(fin_bit | static_cast<uint8_t>(op)));
  if (payload_bytes < 126) {
    h += static_cast<char>(payload_bytes);
  } else if (payload_bytes <= 0xffff) {
    h += static_cast<char>(126);
    h += static_cast<char>(payload_bytes >> 8);
    h += static_cast<char>(payload_bytes & 0xff);
  } else {
    h += static_cast<char>(127);
    for (int shift = 56; shift >= 0; shift -= 8) {
      h += static_cast<char>((payload_bytes >> shift) & 0xff);
    }
  }
  return h;
}

std::string ws_frame(ws_opcode op, std::string_view payload) {
  std::string f = ws_frame_header(op, payload.size());
  f.append(payload);
  return f;
}

std::string ws_encode_close(uint16_t code, std::string_view reason) {
  if (code == 0) return ws_frame(ws_opcode::close, {});
  size_t n = std::min(reason.size(), ws_max_control_payload - 2);
  // Cut before a continuation byte, never inside a character.
  while (n < reason.size() && n > 0 && (byte_at(reason, n) & 0xc0) == 0x80) --n;
  std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
  payload.append(reason.substr(0, n));
  return ws_frame(ws_opcode::close, payload);
}

std::string ws_accept_key(std::string_view client_key) {
  static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input(client_key);
  input.append(guid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  unsigned char out[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

bool is_valid_ws_key(std::string_view key) {
  // base64 of 16 bytes: 22 characters of the alphabet, then "==".
  if (key.size() != 24 || key.substr(22) != "==") return false;
  auto is_b64 = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
  };
  return std::all_of(key.begin(), key.begin() + 22, is_b64);
}

}  // namespace derive::web
