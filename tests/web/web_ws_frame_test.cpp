// web/ws_frame.hpp: RFC 6455 framing, server side. Each test states one rule
// of the decoder or the encoder.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "web/ws_frame.hpp"

namespace derive::web {
namespace {

using kind = ws_event::kind;
constexpr size_t limit = 1000;

// A client frame: FIN, reserved bits and opcode in `first`; masked with a
// fixed key unless `masked` is false; the length in the shortest form unless
// `length_form` forces 126 or 127.
std::string frame(uint8_t first, const std::string& payload, bool masked = true,
                  int length_form = 0) {
  std::string f(1, static_cast<char>(first));
  size_t n = payload.size();
  uint8_t m = masked ? 0x80 : 0;
  int form = length_form ? length_form : n < 126 ? 0 : n <= 0xffff ? 126 : 127;
  if (form == 0) {
    f += static_cast<char>(m | n);
  } else if (form == 126) {
    f += static_cast<char>(m | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xff);
  } else {
    f += static_cast<char>(m | 127);
    for (int s = 56; s >= 0; s -= 8) f += static_cast<char>((uint64_t(n) >> s) & 0xff);
  }
  const char key[4] = {0x37, static_cast<char>(0xfa), 0x21, 0x3d};
  if (masked) f.append(key, 4);
  for (size_t i = 0; i < n; ++i) f += masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i];
  return f;
}

std::string text(const std::string& p) { return frame(0x81, p); }
std::string close_payload(unsigned code, const std::string& reason = "") {
  return std::string{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)} + reason;
}

// Feeds `in` whole and returns every event up to the first need_more.
std::vector<ws_event> decode_all(ws_decoder& d, std::string in) {
  std::vector<ws_event> out;
  for (;;) {
    size_t used = 0;
    auto ev = d.decode(in, used);
    in.erase(0, used);
    if (ev.what == kind::need_more) return out;
    out.push_back(std::move(ev));
  }
}

ws_event only_event(std::string in, size_t max = limit) {
  ws_decoder d(max);
  auto evs = decode_all(d, std::move(in));
  EXPECT_EQ(evs.size(), 1u);
  return evs.empty() ? ws_event{} : evs.front();
}

void expect_failure(const std::string& in, uint16_t code) {
  auto ev = only_event(in);
  EXPECT_EQ(ev.what, kind::failed);
  EXPECT_EQ(ev.code, code);
}

// --- messages -------------------------------------------------------------------

TEST(ws_frame, a_masked_text_frame_is_a_message) {
  auto ev = only_event(text(R"({"op":"get"})"));
  EXPECT_EQ(ev.what, kind::text);
  EXPECT_EQ(ev.payload, R"({"op":"get"})");
}

TEST(ws_frame, an_empty_text_message_is_a_message) {
  auto ev = only_event(text(""));
  EXPECT_EQ(ev.what, kind::text);
  EXPECT_EQ(ev.payload, "");
}

TEST(ws_frame, a_binary_message_is_reported_as_binary) {
  auto ev = only_event(frame(0x82, std::string("\x00\xff", 2)));
  EXPECT_EQ(ev.what, kind::binary);
  EXPECT_EQ(ev.payload, std::string("\x00\xff", 2));
}

TEST(ws_frame, sixteen_and_sixty_four_bit_lengths_are_read) {
  std::string p(300, 'a');
  EXPECT_EQ(only_event(frame(0x81, p, true, 126)).payload, p);
  EXPECT_EQ(only_event(frame(0x81, p, true, 127)).payload, p);
  // A short payload in a longer length form is accepted too.
  EXPECT_EQ(only_event(frame(0x81, "hi", true, 127)).payload, "hi");
}

TEST(ws_frame, bytes_may_arrive_split_anywhere) {
  std::string in = text("first") + frame(0x01, "sec") + frame(0x89, "p") + frame(0x80, "ond");
  ws_decoder d(limit);
  std::string buffered;
  std::vector<ws_event> events;
  for (char c : in) {  // one byte at a time
    buffered += c;
    for (;;) {
      size_t used = 0;
      auto ev = d.decode(buffered, used);
      buffered.erase(0, used);
      if (ev.what == kind::need_more) break;
      events.push_back(std::move(ev));
    }
  }
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].payload, "first");
  EXPECT_EQ(events[1].what, kind::ping);
  EXPECT_EQ(events[2].payload, "second");
  EXPECT_TRUE(d.between_messages());
}

TEST(ws_frame, a_data_frame_payload_is_consumed_as_it_arrives) {
  std::string f = text(std::string(500, 'x'));
  ws_decoder d(limit);
  size_t used = 0;
  auto ev = d.decode(std::string_view(f).substr(0, 100), used);
  EXPECT_EQ(ev.what, kind::need_more);
  EXPECT_EQ(used, 100u);  // header and payload taken: the caller keeps nothing
  EXPECT_FALSE(d.between_messages());
  ev = d.decode(std::string_view(f).substr(100), used);
  EXPECT_EQ(ev.what, kind::text);
  EXPECT_EQ(ev.payload, std::string(500, 'x'));
}

TEST(ws_frame, a_control_frame_waits_until_whole) {
  std::string f = frame(0x89, "ping!");
  ws_decoder d(limit);
  size_t used = 0;
  EXPECT_EQ(d.decode(std::string_view(f).substr(0, f.size() - 1), used).what, kind::need_more);
  EXPECT_EQ(used, 0u);
  auto ev = d.decode(f, used);
  EXPECT_EQ(ev.what, kind::ping);
  EXPECT_EQ(ev.payload, "ping!");
  EXPECT_EQ(used, f.size());
}

// --- fragmentation ----------------------------------------------------------------

TEST(ws_frame, fragments_make_one_message_with_control_frames_between) {
  ws_decoder d(limit);
  auto evs = decode_all(d, frame(0x01, "ab") + frame(0x8A, "") + frame(0x00, "cd") +
                               frame(0x80, "ef"));
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[0].what, kind::pong);
  EXPECT_EQ(evs[1].what, kind::text);
  EXPECT_EQ(evs[1].payload, "abcdef");
}

TEST(ws_frame, a_continuation_outside_a_message_is_1002) { expect_failure(frame(0x80, "x"), 1002); }

TEST(ws_frame, a_new_message_inside_a_message_is_1002) {
  ws_decoder d(limit);
  auto evs = decode_all(d, frame(0x01, "ab") + text("cd"));
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].what, kind::failed);
  EXPECT_EQ(evs[0].code, 1002);
}

// --- malformed frames: 1002 -------------------------------------------------------------

TEST(ws_frame, an_unmasked_client_frame_is_1002) { expect_failure(frame(0x81, "hi", false), 1002); }

TEST(ws_frame, reserved_bits_are_1002) {
  for (uint8_t rsv : {0x40, 0x20, 0x10}) expect_failure(frame(0x81 | rsv, "hi"), 1002);
}

TEST(ws_frame, unknown_opcodes_are_1002) {
  for (uint8_t op : {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    expect_failure(frame(0x80 | op, ""), 1002);
  }
}

TEST(ws_frame, a_fragmented_control_frame_is_1002) { expect_failure(frame(0x09, "p"), 1002); }

TEST(ws_frame, a_control_frame_over_125_bytes_is_1002) {
  expect_failure(frame(0x89, std::string(126, 'p')), 1002);
  EXPECT_EQ(only_event(frame(0x89, std::string(125, 'p'))).what, kind::ping);
}

TEST(ws_frame, a_64_bit_length_with_its_top_bit_set_is_1002) {
  std::string f = "\x81\xff\x80";
  f += std::string(7, '\0') + "abcd";
  expect_failure(f, 1002);
}

TEST(ws_frame, after_1002_every_byte_is_ignored) {
  ws_decoder d(limit);
  auto evs = decode_all(d, frame(0x81, "hi", false) + text("after"));
  ASSERT_EQ(evs.size(), 1u);
  size_t used = 0;
  std::string more = text("more");
  EXPECT_EQ(d.decode(more, used).what, kind::need_more);
  EXPECT_EQ(used, more.size());
}

// --- limits and UTF-8 ------------------------------------------------------------------

TEST(ws_frame, a_message_at_the_limit_is_accepted_one_byte_more_is_1009) {
  EXPECT_EQ(only_event(text(std::string(limit, 'a'))).what, kind::text);
  expect_failure(text(std::string(limit + 1, 'a')), 1009);
}

TEST(ws_frame, the_limit_counts_all_fragments) {
  ws_decoder d(limit);
  auto evs = decode_all(d, frame(0x01, std::string(600, 'a')) + frame(0x80, std::string(401, 'b')));
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].code, 1009);
}

TEST(ws_frame, after_1009_the_message_is_skipped_and_a_close_frame_still_seen) {
  ws_decoder d(limit);
  auto evs = decode_all(d, frame(0x01, std::string(limit + 1, 'a')) + frame(0x89, "") +
                               frame(0x80, std::string(limit, 'b')) +
                               frame(0x88, close_payload(1000)));
  ASSERT_EQ(evs.size(), 3u);
  EXPECT_EQ(evs[0].code, 1009);
  EXPECT_EQ(evs[1].what, kind::ping);
  EXPECT_EQ(evs[2].what, kind::close);
  EXPECT_EQ(evs[2].code, 1000);
}

TEST(ws_frame, a_text_message_not_utf8_is_1007_and_decoding_goes_on) {
  ws_decoder d(limit);
  auto evs = decode_all(d, text("\xff\xfe") + text("ok"));
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[0].what, kind::failed);
  EXPECT_EQ(evs[0].code, 1007);
  EXPECT_EQ(evs[1].payload, "ok");
  // Overlongs and surrogates are not UTF-8 either.
  expect_failure(text("\xc0\xaf"), 1007);
  expect_failure(text("\xed\xa0\x80"), 1007);
}

TEST(ws_frame, utf8_split_across_fragments_is_valid) {
  ws_decoder d(limit);
  auto evs = decode_all(d, frame(0x01, "\xe2\x82") + frame(0x80, "\xac"));
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].what, kind::text);
  EXPECT_EQ(evs[0].payload, "\xe2\x82\xac");
}

// --- close frames -------------------------------------------------------------------------

TEST(ws_frame, a_close_frame_gives_its_code_and_reason) {
  ws_decoder d(limit);
  auto evs = decode_all(d, frame(0x88, close_payload(1001, "bye")));
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].what, kind::close);
  EXPECT_EQ(evs[0].code, 1001);
  EXPECT_EQ(evs[0].payload, "bye");
  EXPECT_TRUE(d.close_received());
}

TEST(ws_frame, an_empty_close_frame_has_no_code) {
  auto ev = only_event(frame(0x88, ""));
  EXPECT_EQ(ev.what, kind::close);
  EXPECT_EQ(ev.code, 0);
}

TEST(ws_frame, a_one_byte_close_payload_is_1002) { expect_failure(frame(0x88, "\x03"), 1002); }

TEST(ws_frame, close_codes_outside_rfc_6455_are_1002) {
  for (unsigned code : {0u, 999u, 1004u, 1005u, 1006u, 1012u, 2999u, 5000u, 65535u}) {
    ws_decoder d(limit);
    auto evs = decode_all(d, frame(0x88, close_payload(code)));
    ASSERT_EQ(evs.size(), 1u) << code;
    EXPECT_EQ(evs[0].code, 1002) << code;
    EXPECT_TRUE(d.close_received()) << code;
  }
  for (unsigned code : {1000u, 1003u, 1007u, 1011u, 3000u, 4999u}) {
    EXPECT_EQ(only_event(frame(0x88, close_payload(code))).code, code);
  }
}

TEST(ws_frame, a_close_reason_not_utf8_is_1007) {
  expect_failure(frame(0x88, close_payload(1000, "\xff")), 1007);
}

TEST(ws_frame, nothing_after_a_close_frame_counts) {
  ws_decoder d(limit);
  auto evs = decode_all(d, frame(0x88, close_payload(1000)) + text("late"));
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].what, kind::close);
}

// --- the encoder ---------------------------------------------------------------------------

TEST(ws_frame, server_frames_are_unmasked_with_fin_and_the_shortest_length) {
  EXPECT_EQ(ws_frame(ws_opcode::text, "hi"), std::string("\x81\x02hi"));
  EXPECT_EQ(ws_frame_header(ws_opcode::text, 125), std::string("\x81\x7d"));
  EXPECT_EQ(ws_frame_header(ws_opcode::text, 126), std::string("\x81\x7e\x00\x7e", 4));
  EXPECT_EQ(ws_frame_header(ws_opcode::text, 65535), std::string("\x81\x7e\xff\xff", 4));
  EXPECT_EQ(ws_frame_header(ws_opcode::text, 65536),
            std::string("\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10));
  EXPECT_EQ(ws_frame(ws_opcode::ping, ""), std::string("\x89\x00", 2));
}

TEST(ws_frame, a_close_frame_carries_code_and_reason_cut_to_125_bytes) {
  EXPECT_EQ(ws_encode_close(1009, "big"), std::string("\x88\x05\x03\xf1" "big", 7));
  EXPECT_EQ(ws_encode_close(0, "ignored"), std::string("\x88\x00", 2));
  std::string euros;
  for (int i = 0; i < 50; ++i) euros += "\xe2\x82\xac";  // 150 bytes
  auto f = ws_encode_close(1000, euros);
  ASSERT_LE(f.size(), 2u + 125u);
  std::string reason = f.substr(4);
  EXPECT_EQ(reason.size() % 3, 0u) << "cut at a character boundary";
}

TEST(ws_frame, what_the_encoder_writes_the_decoder_reads_once_masked) {
  // The encoder's header with the mask bit and a key added is a client frame.
  std::string payload(70000, 'z');
  std::string h = ws_frame_header(ws_opcode::text, payload.size());
  h[1] = static_cast<char>(h[1] | 0x80);
  std::string f = h + std::string(4, '\0') + payload;  // a zero key masks nothing
  EXPECT_EQ(only_event(f, 100000).payload, payload);
}

// --- the handshake ---------------------------------------------------------------------------

TEST(ws_frame, the_accept_key_is_rfc_6455s_example) {
  EXPECT_EQ(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(ws_frame, a_key_is_the_base64_of_16_bytes) {
  EXPECT_TRUE(is_valid_ws_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_FALSE(is_valid_ws_key(""));
  EXPECT_FALSE(is_valid_ws_key("dGhlIHNhbXBsZSBub25jZQ="));
  EXPECT_FALSE(is_valid_ws_key("dGhlIHNhbXBsZSBub25j*Q=="));
  EXPECT_FALSE(is_valid_ws_key("dGhlIHNhbXBsZSBub25jZQAA"));
}

}  // namespace
}  // namespace derive::web
