// Specifications of web/'s plain parts: targets and parameters, JSON text,
// the Origin rule, static file lookup, the send queue and the WebSocket
// message parser. No server, no sockets.
#include <filesystem>
#include <map>

#include <sys/resource.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/json_text.hpp"
#include "tests/web/web_fixture.hpp"
#include "web/errors.hpp"
#include "web/framing.hpp"
#include "web/limits.hpp"
#include "web/router.hpp"
#include "web/send_queue.hpp"
#include "web/server_context.hpp"
#include "web/static_files.hpp"
#include "web/url.hpp"
#include "core/json_text.hpp"
#include "web/ws_protocol.hpp"

namespace derive::web {
namespace {

using nlohmann::json;

TEST(url, percent_decoding_decodes_escapes_and_refuses_bad_ones) {
  EXPECT_EQ(percent_decode("a%2Fb%20c", false), "a/b c");
  EXPECT_EQ(percent_decode("a+b", false), "a+b");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("%e2%82%AC", false), "\xe2\x82\xac");
  EXPECT_FALSE(percent_decode("%zz", false));
  EXPECT_FALSE(percent_decode("%4", false));
  EXPECT_FALSE(percent_decode("abc%", false));
}

TEST(url, targets_split_into_path_and_query) {
  auto t = split_target("/v1/views/docs?prefix=a&limit=2");
  EXPECT_EQ(t.path, "/v1/views/docs");
  EXPECT_EQ(t.query, "prefix=a&limit=2");
  EXPECT_EQ(split_target("http://example.com:8080/v1/health?x=1").path, "/v1/health");
  EXPECT_EQ(split_target("/a").query, "");
}

TEST(url, query_parameters_are_decoded_and_the_last_repeat_wins) {
  auto q = parse_query("a=1&b=x%20y&a=2&flag&=empty");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->at("a"), "2");
  EXPECT_EQ(q->at("b"), "x y");
  EXPECT_EQ(q->at("flag"), "");
  auto bad = parse_query("prefix=%G1");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), errc::invalid_parameter);
}

TEST(url, integers_are_plain_decimal_digits_that_fit_64_bits) {
  EXPECT_EQ(parse_uint("0"), 0u);
  EXPECT_EQ(parse_uint("18446744073709551615"), UINT64_MAX);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1a", "0x10", "1.0", "18446744073709551616"}) {
    EXPECT_FALSE(parse_uint(bad)) << bad;
  }
  query_map q{{"limit", "0"}};
  EXPECT_FALSE(uint_param(q, "limit", 100, 1, 10000));
  EXPECT_EQ(*uint_param(q, "other", 100, 1, 10000), 100u);
}

TEST(errors, every_error_code_has_its_http_status) {
  EXPECT_EQ(http_status_for(errc::invalid_json), 400u);
  EXPECT_EQ(http_status_for(errc::idempotency_key_reused), 422u);
  EXPECT_EQ(http_status_for(errc::unknown_view), 404u);
  EXPECT_EQ(http_status_for(errc::unknown_query), 404u);
  EXPECT_EQ(http_status_for(errc::not_caught_up), 504u);
  EXPECT_EQ(http_status_for(errc::payload_too_large), 413u);
  EXPECT_EQ(http_status_for(errc::storage_full), 507u);
  EXPECT_EQ(http_status_for(errc::unavailable), 503u);
  auto body = json::parse(error_body("not_found", "no \"such\" thing"));
  EXPECT_EQ(body["error"]["code"], "not_found");
  EXPECT_EQ(body["error"]["message"], "no \"such\" thing");
}

// protocol.md, "Close frames the server sends".
TEST(errors, every_close_reason_has_its_code_and_text) {
  auto frame = [](ws_close why) { return ws_close_frame_for(why, 1024); };
  EXPECT_EQ(frame(ws_close::shutting_down).code, 1001);
  EXPECT_EQ(frame(ws_close::shutting_down).reason, "the server is shutting down");
  EXPECT_EQ(frame(ws_close::no_pong).code, 1001);
  EXPECT_EQ(frame(ws_close::no_pong).reason, "no answer to ping");
  EXPECT_EQ(frame(ws_close::binary_message).code, 1003);
  EXPECT_EQ(frame(ws_close::binary_message).reason, "binary messages are not supported");
  EXPECT_EQ(frame(ws_close::invalid_utf8).code, 1007);
  EXPECT_EQ(frame(ws_close::stalled_reader).code, 1008);
  EXPECT_EQ(frame(ws_close::stalled_reader).reason, "the client stopped reading");
  EXPECT_EQ(frame(ws_close::message_too_big).code, 1009);
  EXPECT_EQ(frame(ws_close::message_too_big).reason, "messages are limited to 1024 bytes");
}

TEST(idempotency_header, control_characters_in_the_raw_key_are_found) {
  EXPECT_TRUE(raw_idempotency_key_is_malformed(
      "POST / HTTP/1.1\r\nIdempotency-Key: a\x01" "b\r\n\r\n"));
  EXPECT_TRUE(raw_idempotency_key_is_malformed("POST / HTTP/1.1\r\nidempotency-key:a\x7f\r\n\r\n"));
  EXPECT_FALSE(raw_idempotency_key_is_malformed("POST / HTTP/1.1\r\nIdempotency-Key: a\tb\r\n\r\n"));
  EXPECT_FALSE(raw_idempotency_key_is_malformed("POST / HTTP/1.1\r\nX-Other: a\x01" "b\r\n\r\n"));
  // Only the header counts, not the body after the blank line.
  EXPECT_FALSE(raw_idempotency_key_is_malformed(
      "POST / HTTP/1.1\r\nHost: x\r\n\r\nIdempotency-Key: a\x01" "b\r\n"));
}

TEST(origin, by_default_localhost_and_the_servers_own_origin_are_allowed) {
  std::vector<std::string> none;
  EXPECT_TRUE(origin_allowed("http://localhost:3000", "127.0.0.1:8080", none));
  EXPECT_TRUE(origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080", none));
  EXPECT_TRUE(origin_allowed("https://[::1]:9", "x", none));
  EXPECT_TRUE(origin_allowed("http://app.example.com:8080", "app.example.com:8080", none));
  EXPECT_TRUE(origin_allowed("HTTP://App.Example.com", "app.example.com:80", none));
  EXPECT_FALSE(origin_allowed("http://evil.example", "app.example.com:8080", none));
  EXPECT_FALSE(origin_allowed("http://app.example.com:9090", "app.example.com:8080", none));
  EXPECT_FALSE(origin_allowed("null", "127.0.0.1:8080", none));
  EXPECT_FALSE(origin_allowed("http://localhost.evil.example", "127.0.0.1:8080", none));
}

TEST(origin, a_configured_list_replaces_the_default) {
  std::vector<std::string> list{"https://app.example.com"};
  EXPECT_TRUE(origin_allowed("https://APP.example.com", "x", list));
  EXPECT_FALSE(origin_allowed("http://localhost:3000", "localhost:3000", list));
  EXPECT_TRUE(origin_allowed("http://anything", "x", {"*"}));
}

class static_lookup_test : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() + "/www";
    webtest::write_file(root_ + "/index.html", "i");
    webtest::write_file(root_ + "/a b.js", "j");
    webtest::write_file(root_ + "/sub/index.html", "s");
    webtest::write_file(dir_.path() + "/secret.txt", "secret");
    std::filesystem::create_symlink(dir_.path() + "/secret.txt", root_ + "/link.txt");
  }
  static_lookup::outcome outcome(std::string_view path) { return lookup_static(root_, path).result; }

  webtest::temp_dir dir_;
  std::string root_;
};

TEST_F(static_lookup_test, files_and_directory_indexes_are_found_with_their_types) {
  auto index = lookup_static(root_, "/");
  ASSERT_EQ(index.result, static_lookup::found);
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  auto js = lookup_static(root_, "/a%20b.js");
  ASSERT_EQ(js.result, static_lookup::found);
  EXPECT_EQ(js.content_type, "text/javascript");
  EXPECT_EQ(outcome("/sub/"), static_lookup::found);
  EXPECT_EQ(outcome("/missing.html"), static_lookup::not_found);
}

TEST_F(static_lookup_test, nothing_outside_the_root_is_reachable) {
  EXPECT_EQ(outcome("/../secret.txt"), static_lookup::not_found);
  EXPECT_EQ(outcome("/%2e%2e/secret.txt"), static_lookup::not_found);
  EXPECT_EQ(outcome("/sub/..%2F..%2Fsecret.txt"), static_lookup::not_found);
  EXPECT_EQ(outcome("/link.txt"), static_lookup::not_found);
  EXPECT_EQ(outcome("/..\\secret.txt"), static_lookup::not_found);
  EXPECT_EQ(outcome("/index.html%00.js"), static_lookup::not_found);
  EXPECT_EQ(outcome("/%zz"), static_lookup::bad_encoding);
  EXPECT_EQ(lookup_static("", "/index.html").result, static_lookup::not_found);
}

TEST(content_types, are_chosen_by_extension) {
  EXPECT_EQ(content_type_for("x.css"), "text/css; charset=utf-8");
  EXPECT_EQ(content_type_for("x.MJS"), "text/javascript");
  EXPECT_EQ(content_type_for("x.svg"), "image/svg+xml");
  EXPECT_EQ(content_type_for("dir.d/file"), "application/octet-stream");
}

// --- send queue ---------------------------------------------------------------

change_ptr change(uint64_t offset, const std::string& key, std::optional<std::string> value) {
  return make_change(offset, key, std::move(value));
}

std::string text_of(const out_frame& f) {
  std::string s;
  f.for_each_piece([&](std::string_view p) { s += p; });
  return s;
}

TEST(send_queue, control_messages_go_before_changes) {
  send_queue q(1 << 20);
  q.open_lane(1, "s1");
  q.push_changes(1, {change(5, "k", "1")});
  q.push_message("{\"op\":\"x\"}");
  EXPECT_EQ(text_of(*q.pop()), "{\"op\":\"x\"}");
  auto batch = json::parse(text_of(*q.pop()));
  EXPECT_EQ(batch["op"], "changes");
  EXPECT_EQ(batch["id"], "s1");
  EXPECT_EQ(batch["items"], json::parse(R"([{"offset":5,"key":"k","value":1}])"));
  EXPECT_FALSE(q.pop());
}

TEST(send_queue, everything_queued_for_a_subscription_goes_out_as_one_batch) {
  send_queue q(1 << 20);
  q.open_lane(1, "s1");
  q.push_changes(1, {change(5, "a", "1"), change(5, "b", "2")});
  q.push_changes(1, {change(6, "a", std::nullopt)});
  auto f = q.pop();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->items.size(), 3u);
  auto batch = json::parse(text_of(*f));
  EXPECT_EQ(batch["items"][2], json::parse(R"({"offset":6,"key":"a","value":null})"));
  EXPECT_EQ(q.change_bytes(), 0u);
}

TEST(send_queue, batches_share_the_item_buffers) {
  send_queue q(1 << 20);
  q.open_lane(1, "s1");
  q.open_lane(2, "s2");
  auto c = change(1, "k", "\"v\"");
  q.push_changes(1, {c});
  q.push_changes(2, {c});
  auto f1 = q.pop();
  auto f2 = q.pop();
  EXPECT_EQ(f1->items[0]->wire.get(), f2->items[0]->wire.get());
}

TEST(send_queue, lanes_are_served_round_robin) {
  send_queue q(1 << 20);
  for (uint64_t lane : {1, 2, 3}) q.open_lane(lane, "s" + std::to_string(lane));
  q.push_changes(1, {change(1, "a", "1")});
  q.push_changes(2, {change(2, "a", "1")});
  EXPECT_EQ(json::parse(text_of(*q.pop()))["id"], "s1");
  q.push_changes(1, {change(3, "a", "1")});
  EXPECT_EQ(json::parse(text_of(*q.pop()))["id"], "s2");
  EXPECT_EQ(json::parse(text_of(*q.pop()))["id"], "s1");
}

TEST(send_queue, a_held_lane_keeps_its_changes_until_released) {
  send_queue q(1 << 20);
  q.open_lane(1, "s1");
  q.open_lane(2, "s2");
  q.hold_lane(1, true);
  q.push_changes(1, {change(1, "a", "1")});
  q.push_changes(2, {change(2, "b", "1")});
  EXPECT_EQ(json::parse(text_of(*q.pop()))["id"], "s2");
  EXPECT_FALSE(q.pop());
  EXPECT_GT(q.change_bytes(), 0u);
  q.hold_lane(1, false);
  EXPECT_EQ(json::parse(text_of(*q.pop()))["id"], "s1");
}

TEST(send_queue, trim_drops_changes_covered_by_a_newer_snapshot) {
  send_queue q(1 << 20);
  q.open_lane(1, "s1");
  q.push_changes(1, {change(1, "a", "1"), change(2, "b", "1"), change(3, "c", "1")});
  size_t before = q.change_bytes();
  EXPECT_EQ(q.trim_lane(1, 2), 2u);
  EXPECT_LT(q.change_bytes(), before);
  EXPECT_EQ(q.lane_items(1), 1u);
  auto batch = json::parse(text_of(*q.pop()));
  EXPECT_EQ(batch["items"][0]["offset"], 3);
  EXPECT_EQ(q.change_bytes(), 0u);
}

TEST(send_queue, clear_returns_every_count_to_zero) {
  send_queue q(1 << 20);
  q.open_lane(1, "s1");
  q.push_changes(1, {change(1, "a", "1")});
  q.push_message(std::string(1000, ' '));
  q.clear();
  EXPECT_EQ(q.change_bytes(), 0u);
  EXPECT_EQ(q.message_bytes(), 0u);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.pop());
}

TEST(send_queue, over_the_limit_older_changes_of_a_key_are_replaced_by_newer_ones) {
  std::string pad(200, 'x');
  send_queue q(4000);
  q.open_lane(1, "s1");
  for (uint64_t o = 1; o <= 20; ++o) {
    std::string value = "[" + std::to_string(o) + ",\"" + pad + "\"]";
    auto r = q.push_changes(1, {change(o, "k" + std::to_string(o % 3), value)});
    EXPECT_TRUE(r.dropped.empty());
  }
  EXPECT_LT(q.change_bytes(), 4000u);
  auto f = q.pop();
  ASSERT_TRUE(f);
  EXPECT_LT(f->items.size(), 20u);
  // Applied in order, the batch gives every key its newest value (offset 20's
  // state), and offsets only grow.
  std::map<std::string, uint64_t> state;
  uint64_t last = 0;
  for (auto& c : f->items) {
    EXPECT_GT(c->offset, last);
    last = c->offset;
    state[c->key] = json::parse(*c->value)[0].get<uint64_t>();
  }
  EXPECT_EQ(state, (std::map<std::string, uint64_t>{{"k0", 18}, {"k1", 19}, {"k2", 20}}));
}

TEST(send_queue, when_conflation_is_not_enough_the_largest_lane_is_dropped) {
  std::string big(200, 'x');
  send_queue q(4000);
  q.open_lane(1, "s1");
  q.open_lane(2, "s2");
  q.push_changes(2, {change(1, "small", "1")});
  send_queue::push_result last;
  for (uint64_t o = 2; o <= 40 && last.dropped.empty(); ++o) {
    last = q.push_changes(1, {change(o, "k" + std::to_string(o), "\"" + big + "\"")});
  }
  ASSERT_EQ(last.dropped.size(), 1u);
  EXPECT_EQ(last.dropped[0].first, 1u);
  EXPECT_EQ(q.lane_items(1), 0u);
  EXPECT_EQ(q.lane_items(2), 1u);
  EXPECT_LE(q.change_bytes(), 2000u);
}

TEST(send_queue, a_closed_lane_drops_its_changes_and_ignores_new_ones) {
  send_queue q(1 << 20);
  q.open_lane(1, "s1");
  q.push_changes(1, {change(1, "a", "1")});
  EXPECT_EQ(q.close_lane(1), 1u);
  q.push_changes(1, {change(2, "a", "1")});
  EXPECT_TRUE(q.empty());
}

// --- request framing ---------------------------------------------------------

TEST(framing, ordinary_requests_pass) {
  EXPECT_EQ(framing_problem("GET / HTTP/1.1\r\nHost: a\r\nX-A: b c\r\n\r\n", 11), std::nullopt);
  EXPECT_EQ(framing_problem("GET / HTTP/1.0\r\n\r\n", 10), std::nullopt);
  EXPECT_EQ(framing_problem("\r\nPOST / HTTP/1.1\r\nhost:a\r\nTransfer-Encoding: Chunked \r\n"
                            "Idempotency-Key: k\r\n\r\n",
                            11),
            std::nullopt);
}

TEST(framing, each_ambiguous_header_is_named) {
  auto problem = [](std::string_view fields, unsigned version = 11) {
    return framing_problem("POST /v1/events HTTP/1.1\r\n" + std::string(fields) + "\r\n", version)
        .value_or("");
  };
  EXPECT_NE(problem("Host: a\r\nX-A: b\r\n c\r\n").find("line folding"), std::string::npos);
  EXPECT_NE(problem("Host: a\r\nX-A: b\r\n\tc\r\n").find("line folding"), std::string::npos);
  EXPECT_NE(problem("Host: a\r\nTransfer-Encoding: xchunked\r\nContent-Length: 1\r\n")
                .find("Transfer-Encoding other than chunked"),
            std::string::npos);
  EXPECT_NE(problem("Host: a\r\nTransfer-Encoding: identity\r\n").find("Transfer-Encoding"),
            std::string::npos);
  EXPECT_NE(problem("Host: a\r\nTransfer-Encoding: chunked, identity\r\n").find("other than"),
            std::string::npos);
  EXPECT_NE(problem("Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")
                .find("one Transfer-Encoding"),
            std::string::npos);
  EXPECT_NE(problem("Host: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n")
                .find("not both"),
            std::string::npos);
  EXPECT_NE(problem("X-A: b\r\n").find("must carry a Host"), std::string::npos);
  EXPECT_EQ(problem("X-A: b\r\n", 10), "");
  EXPECT_NE(problem("Host: a\r\nhost: a\r\n").find("exactly one Host"), std::string::npos);
  EXPECT_NE(problem("Host: a\r\nIdempotency-Key: k\r\nidempotency-key: k\r\n")
                .find("one Idempotency-Key"),
            std::string::npos);
}

// --- WebSocket messages ------------------------------------------------------

ws_error error_of(std::string_view text) {
  auto r = parse_ws_request(text);
  EXPECT_TRUE(std::holds_alternative<ws_error>(r)) << text;
  return std::holds_alternative<ws_error>(r) ? std::get<ws_error>(r) : ws_error{};
}

TEST(ws_protocol, malformed_messages_are_bad_messages) {
  for (const char* text : {"not json", "[1,2]", "\"s\"", "{}", R"({"op":"nope","id":"x"})",
                           R"({"op":"subscribe"})", R"({"op":"get","id":7})"}) {
    EXPECT_EQ(error_of(text).code, "bad_message") << text;
  }
  EXPECT_EQ(error_of(R"({"op":"nope","id":"x"})").id, "x");
  EXPECT_EQ(error_of(R"({"op":"get","id":7})").id, std::nullopt);
  std::string deep = "{\"op\":\"get\",\"id\":\"d\",\"x\":" + std::string(300, '[') +
                     std::string(300, ']') + "}";
  EXPECT_EQ(error_of(deep).code, "bad_message");
}

TEST(ws_protocol, duplicate_members_and_inexact_numbers_are_refused) {
  auto in_events = error_of(
      R"({"op":"append","id":"a","events":[{"type":"t","data":{"n":18446744073709551616}}]})");
  EXPECT_EQ(in_events.code, "invalid_event");
  EXPECT_EQ(in_events.id, "a");
  EXPECT_EQ(in_events.message.rfind("events[0].data.n is an integer beyond 64 bits", 0), 0u)
      << in_events.message;
  auto dup_in_events =
      error_of(R"({"op":"append","id":"a","events":[{"type":"t","data":{"k":1,"k":2}}]})");
  EXPECT_EQ(dup_in_events.code, "invalid_event");
  EXPECT_EQ(dup_in_events.message.rfind("events[0].data.k appears twice", 0), 0u);
  auto dup_op = error_of(R"({"op":"get","id":"g","view":"v","key":"k","op":"append"})");
  EXPECT_EQ(dup_op.code, "bad_message");
  EXPECT_EQ(dup_op.id, "g");
  EXPECT_EQ(dup_op.message.rfind("op appears twice", 0), 0u) << dup_op.message;
  auto dup_id = error_of(R"({"op":"unsubscribe","id":"a","id":"b"})");
  EXPECT_EQ(dup_id.code, "bad_message");
  EXPECT_EQ(dup_id.id, std::nullopt);
}

TEST(ws_protocol, ids_are_strings_of_at_most_64_characters) {
  std::string id64(64, 'i');
  std::string euro64;
  for (int i = 0; i < 64; ++i) euro64 += "\xe2\x82\xac";
  auto ok = parse_ws_request(json{{"op", "unsubscribe"}, {"id", id64}}.dump());
  ASSERT_TRUE(std::holds_alternative<ws_request>(ok));
  EXPECT_TRUE(std::holds_alternative<ws_request>(
      parse_ws_request(json{{"op", "unsubscribe"}, {"id", euro64}}.dump())));
  auto long_id = error_of(json{{"op", "unsubscribe"}, {"id", id64 + "i"}}.dump());
  EXPECT_EQ(long_id.code, "bad_message");
  EXPECT_EQ(long_id.id, std::nullopt);
}

TEST(ws_protocol, subscribe_needs_a_view_and_exactly_one_of_key_and_prefix) {
  auto sub = parse_ws_request(R"({"op":"subscribe","id":"s","view":"v","prefix":"","from":3})");
  ASSERT_TRUE(std::holds_alternative<ws_request>(sub));
  auto& s = std::get<ws_subscribe>(std::get<ws_request>(sub).op);
  EXPECT_EQ(s.filter.view, "v");
  EXPECT_FALSE(s.filter.key);
  EXPECT_EQ(s.from, 3u);
  for (const char* text :
       {R"({"op":"subscribe","id":"s","view":"v"})",
        R"({"op":"subscribe","id":"s","view":"v","key":"a","prefix":"b"})",
        R"({"op":"subscribe","id":"s","key":"a"})",
        R"({"op":"subscribe","id":"s","view":1,"key":"a"})",
        R"({"op":"subscribe","id":"s","view":"v","key":1})",
        R"({"op":"subscribe","id":"s","view":"v","key":"a","from":-1})",
        R"({"op":"subscribe","id":"s","view":"v","key":"a","from":1.5})"}) {
    auto e = error_of(text);
    EXPECT_EQ(e.code, "invalid_parameter") << text;
    EXPECT_EQ(e.id, "s");
  }
}

TEST(ws_protocol, get_and_append_check_their_members) {
  EXPECT_EQ(error_of(R"({"op":"get","id":"g","view":"v"})").code, "invalid_parameter");
  EXPECT_EQ(error_of(R"({"op":"get","id":"g","view":"v","key":"k","timeout_ms":30001})").code,
            "invalid_parameter");
  EXPECT_EQ(error_of(R"({"op":"append","id":"a"})").code, "invalid_event");
  EXPECT_EQ(error_of(R"({"op":"append","id":"a","events":{"type":"t"}})").code, "invalid_event");
  EXPECT_EQ(error_of(R"({"op":"append","id":"a","events":[]})").code, "invalid_event");
  EXPECT_EQ(error_of(R"({"op":"append","id":"a","events":[{"type":"t","x":1}]})").code,
            "invalid_event");
  EXPECT_EQ(error_of(R"({"op":"append","id":"a","events":[{"type":"t"}],"idempotency_key":""})")
                .code,
            "invalid_idempotency_key");
  EXPECT_EQ(error_of(R"({"op":"append","id":"a","events":[{"type":"t"}],"idempotency_key":5})")
                .code,
            "invalid_idempotency_key");
}

TEST(ws_protocol, large_snapshots_are_split_and_all_but_the_last_say_more) {
  std::vector<key_value> items;
  for (int i = 0; i < 25; ++i) items.push_back({"k" + std::to_string(i), std::to_string(i)});
  auto msgs = encode_snapshot("s", 9, items, true, 10, 1 << 20);
  ASSERT_EQ(msgs.size(), 3u);
  size_t total = 0;
  for (size_t i = 0; i < msgs.size(); ++i) {
    auto m = json::parse(msgs[i]);
    EXPECT_EQ(m["offset"], 9);
    EXPECT_EQ(m["reset"], true);
    EXPECT_EQ(m["more"], i + 1 < msgs.size());
    total += m["items"].size();
  }
  EXPECT_EQ(total, 25u);
  auto empty = json::parse(encode_snapshot("s", 0, {}, false, 10, 1 << 20).at(0));
  EXPECT_EQ(empty, json::parse(R"({"op":"snapshot","id":"s","offset":0,"items":[],"more":false})"));
}

TEST(ws_protocol, json_nesting_depth_is_measured_outside_strings) {
  EXPECT_FALSE(json_deeper_than(R"({"a":"[[[[[[["})", 2));
  EXPECT_TRUE(json_deeper_than("[[[1]]]", 2));
  EXPECT_FALSE(json_deeper_than("[[1],[2]]", 2));
}

// --- transport: Host, Origin, limits (docs/security.md) ---

TEST(origin, userinfo_other_schemes_paths_and_garbage_are_refused) {
  std::vector<std::string> none;
  EXPECT_FALSE(origin_allowed("http://localhost:1@evil.example", "127.0.0.1:8080", none));
  EXPECT_FALSE(origin_allowed("http://user@localhost", "127.0.0.1:8080", none));
  EXPECT_FALSE(origin_allowed("ftp://localhost", "127.0.0.1:8080", none));
  EXPECT_FALSE(origin_allowed("http://localhost/path", "127.0.0.1:8080", none));
  EXPECT_FALSE(origin_allowed("http://local host", "127.0.0.1:8080", none));
  EXPECT_FALSE(origin_allowed("http://localhost:80x", "127.0.0.1:8080", none));
  EXPECT_FALSE(origin_allowed("localhost", "127.0.0.1:8080", none));
  EXPECT_FALSE(origin_allowed("http://", "127.0.0.1:8080", none));
  // A listed entry never matches an origin that does not parse.
  EXPECT_FALSE(origin_allowed("http://a@b", "x", {"http://a@b"}));
}

TEST(url, host_headers_and_origins_parse_into_host_and_port) {
  auto h = parse_host_header("Example.COM:8443");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->host, "example.com");
  EXPECT_EQ(h->port, "8443");
  h = parse_host_header("[::1]:9");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->host, "[::1]");
  EXPECT_EQ(h->port, "9");
  EXPECT_FALSE(parse_host_header(""));
  EXPECT_FALSE(parse_host_header("a@b"));
  EXPECT_FALSE(parse_host_header("a:"));
  EXPECT_FALSE(parse_host_header("a:1234567"));
  EXPECT_FALSE(parse_host_header("[zz]"));
  auto o = parse_origin("HTTPS://App.example:443/");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->scheme, "https");
  EXPECT_EQ(o->where.host, "app.example");
  EXPECT_FALSE(parse_origin("null"));
}

TEST(host, by_default_loopback_names_and_the_bound_address_are_allowed) {
  std::vector<std::string> none;
  EXPECT_TRUE(host_allowed("localhost:8080", none, "127.0.0.1"));
  EXPECT_TRUE(host_allowed("127.0.0.1", none, "127.0.0.1"));
  EXPECT_TRUE(host_allowed("[::1]:1", none, "127.0.0.1"));
  EXPECT_TRUE(host_allowed("10.0.0.5:8080", none, "10.0.0.5"));
  EXPECT_TRUE(host_allowed("[fe80::1]:8080", none, "fe80::1"));
  // DNS rebinding: a name the attacker controls, resolving to us.
  EXPECT_FALSE(host_allowed("evil.example:8080", none, "127.0.0.1"));
  EXPECT_FALSE(host_allowed("0.0.0.0:8080", none, "0.0.0.0"));
  EXPECT_FALSE(host_allowed("localhost@evil.example", none, "127.0.0.1"));
}

TEST(host, a_configured_list_replaces_the_default) {
  EXPECT_TRUE(host_allowed("App.Example:443", {"app.example"}, "0.0.0.0"));
  EXPECT_FALSE(host_allowed("localhost", {"app.example"}, "127.0.0.1"));
  EXPECT_TRUE(host_allowed("anything.example", {"*"}, "127.0.0.1"));
  EXPECT_FALSE(host_allowed("bad host", {"*"}, "127.0.0.1"));
}

using std::chrono::milliseconds;

TEST(rate_limiter, a_burst_is_admitted_then_tokens_come_at_the_rate) {
  rate_limiter r(10, 3);  // 10 a second, 3 at once
  auto t = limit_clock::now();
  EXPECT_FALSE(r.take("a", t));
  EXPECT_FALSE(r.take("a", t));
  EXPECT_FALSE(r.take("a", t));
  auto wait = r.take("a", t);
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, milliseconds(100));
  EXPECT_FALSE(r.take("b", t)) << "each client has its own bucket";
  EXPECT_TRUE(r.take("a", t + milliseconds(50)));
  EXPECT_FALSE(r.take("a", t + milliseconds(100)));
  EXPECT_TRUE(r.take("a", t + milliseconds(100)));
}

TEST(rate_limiter, rate_zero_is_unlimited) {
  rate_limiter r(0, 1);
  auto t = limit_clock::now();
  for (int i = 0; i < 1000; ++i) ASSERT_FALSE(r.take("a", t));
}

TEST(rate_limiter, idle_clients_are_forgotten_without_changing_answers) {
  rate_limiter r(1000, 1);
  auto t = limit_clock::now();
  for (int i = 0; i < 5000; ++i) ASSERT_FALSE(r.take("c" + std::to_string(i), t));
  // A second later every bucket is full again: sweeping them is invisible.
  auto later = t + std::chrono::seconds(1);
  for (int i = 0; i < 5000; ++i) ASSERT_FALSE(r.take("c" + std::to_string(i), later));
  EXPECT_TRUE(r.take("c0", later));
}

TEST(key_quota, counts_per_client_and_window_and_takes_refunds) {
  key_quota q(2, milliseconds(1000));
  auto t = limit_clock::now();
  EXPECT_FALSE(q.take("a", t));
  EXPECT_FALSE(q.take("a", t));
  auto wait = q.take("a", t + milliseconds(400));
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, milliseconds(600));
  EXPECT_FALSE(q.take("b", t));
  q.refund("a");  // a replay or a failed append costs nothing
  EXPECT_FALSE(q.take("a", t + milliseconds(500)));
  EXPECT_TRUE(q.take("a", t + milliseconds(999)));
  EXPECT_FALSE(q.take("a", t + milliseconds(1000))) << "a new window";
}

TEST(append_limits, refusals_name_the_limit_and_when_to_retry) {
  append_limits limits(1, 1, 1, std::chrono::hours(1));
  auto t = limit_clock::now();
  EXPECT_FALSE(limits.admit("a", true, t));
  auto refused = limits.admit("a", false, t);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, "rate_limited");
  EXPECT_EQ(refused->retry_after_seconds(), 1u);
  EXPECT_NE(refused->message.find("1 a second"), std::string::npos) << refused->message;
  limits.settle("a", true);  // the key was new: it stays counted
  refused = limits.admit("a", true, t + std::chrono::seconds(1));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, "too_many_idempotency_keys");
  EXPECT_EQ(refused->retry_after_seconds(), 3599u);
  EXPECT_FALSE(limits.admit("a", false, t + std::chrono::seconds(2))) << "appends without a key go on";
}

TEST(append_limits, clients_are_token_subjects_or_else_addresses) {
  principal anonymous;
  principal alice;
  alice.token = token_claims{};
  alice.token->sub = "alice";
  EXPECT_EQ(client_key(anonymous, "10.0.0.1"), "addr:10.0.0.1");
  EXPECT_EQ(client_key(alice, "10.0.0.1"), "sub:alice");
  EXPECT_EQ(client_key(alice, "10.0.0.2"), client_key(alice, "10.0.0.1"));
}

TEST(connection_limits, tickets_count_in_total_and_per_address) {
  connection_limits limits(3, 2);
  std::string why;
  auto a1 = limits.admit("10.0.0.1", why);
  auto a2 = limits.admit("10.0.0.1", why);
  ASSERT_TRUE(a1 && a2);
  EXPECT_FALSE(limits.admit("10.0.0.1", why));
  EXPECT_NE(why.find("this address"), std::string::npos) << why;
  auto b1 = limits.admit("10.0.0.2", why);
  ASSERT_TRUE(b1);
  EXPECT_FALSE(limits.admit("10.0.0.3", why));
  EXPECT_NE(why.find("maximum of 3"), std::string::npos) << why;
  a1.reset();
  EXPECT_EQ(limits.open(), 2u);
  EXPECT_TRUE(limits.admit("10.0.0.1", why));
}

TEST(connection_limits, the_total_stays_below_the_descriptor_limit) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit lowered = saved;
  lowered.rlim_cur = 1000;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  EXPECT_EQ(effective_max_connections(100'000), 936u);  // 64 kept free
  EXPECT_EQ(effective_max_connections(3), 3u);
  ::setrlimit(RLIMIT_NOFILE, &saved);
}

using verdict = web::response_budget::verdict;
constexpr size_t kib = 1024;
constexpr size_t mib = 1024 * 1024;

TEST(response_budget, small_responses_are_neither_counted_nor_refused) {
  web::response_budget budget(1000);
  web::response_budget::charge c;
  EXPECT_EQ(budget.admit(web::response_budget::small_bytes, "a", c), verdict::admitted);
  EXPECT_EQ(c.bytes(), 0u);
  EXPECT_EQ(budget.used(), 0u);
}

TEST(response_budget, large_responses_are_charged_until_released) {
  web::response_budget budget(24 * mib);  // 3 MiB per address
  web::response_budget::charge a, b, c;
  EXPECT_EQ(budget.admit(2 * mib, "a", a), verdict::admitted);
  EXPECT_EQ(budget.admit(mib, "a", b), verdict::admitted);  // the address's share, exactly
  EXPECT_EQ(budget.used(), 3 * mib);
  EXPECT_EQ(budget.admit(100 * kib, "a", c), verdict::over_address);
  EXPECT_EQ(c.bytes(), 0u);
  a.reset();
  EXPECT_EQ(budget.used(), mib);
  EXPECT_EQ(budget.admit(2 * mib, "a", c), verdict::admitted);
  {
    web::response_budget::charge moved = std::move(c);
    EXPECT_EQ(c.bytes(), 0u);
    EXPECT_EQ(budget.used(), 3 * mib);
  }  // destroyed: released
  EXPECT_EQ(budget.used(), mib);
}

TEST(response_budget, addresses_share_the_total) {
  web::response_budget budget(8 * mib);  // 1 MiB per address
  std::vector<web::response_budget::charge> held(9);
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(budget.admit(mib, "client" + std::to_string(i), held[i]), verdict::admitted);
  EXPECT_EQ(budget.admit(100 * kib, "client8", held[8]), verdict::over_total);
  held[0].reset();
  EXPECT_EQ(budget.admit(100 * kib, "client1", held[8]), verdict::over_address);
  EXPECT_EQ(budget.admit(100 * kib, "client8", held[8]), verdict::admitted);
}

TEST(response_budget, one_response_larger_than_a_share_goes_out_alone) {
  web::response_budget budget(800 * kib);  // 100 KiB per address
  web::response_budget::charge big, other, third;
  EXPECT_EQ(budget.admit(500 * kib, "a", big), verdict::admitted);  // the address held nothing
  EXPECT_EQ(budget.admit(70 * kib, "a", other), verdict::over_address);
  EXPECT_EQ(budget.admit(400 * kib, "b", other), verdict::over_total);
  EXPECT_EQ(budget.admit(300 * kib, "b", other), verdict::admitted);
  big.reset();
  EXPECT_EQ(budget.admit(70 * kib, "a", third), verdict::admitted);
}

TEST(response_budget, zero_means_no_budget_but_still_counts) {
  web::response_budget budget(0);
  web::response_budget::charge a, b;
  EXPECT_EQ(budget.admit(size_t{1} << 30, "a", a), verdict::admitted);
  EXPECT_EQ(budget.admit(size_t{1} << 30, "a", b), verdict::admitted);
  EXPECT_EQ(budget.used(), size_t{2} << 30);
}

// The completion inbox (post_gate): a burst of functions queued from a
// runtime thread costs one post, and that post runs them all, in order.
TEST(post_gate, a_burst_is_scheduled_once_and_runs_in_order) {
  auto gate = std::make_shared<post_gate>();
  std::vector<std::function<void()>> posted;
  auto schedule = [&](auto drain) { posted.emplace_back(std::move(drain)); };
  std::vector<int> ran;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(gate->queue([&ran, i] { ran.push_back(i); }, schedule));
  ASSERT_EQ(posted.size(), 1u);
  EXPECT_TRUE(ran.empty());
  posted[0]();
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3, 4}));
  // The next burst posts again; a function queued while a drain runs joins
  // the next drain.
  EXPECT_TRUE(gate->queue(
      [&] { EXPECT_TRUE(gate->queue([&ran] { ran.push_back(6); }, schedule)); ran.push_back(5); },
      schedule));
  ASSERT_EQ(posted.size(), 2u);
  posted[1]();
  ASSERT_EQ(posted.size(), 3u);
  posted[2]();
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
}

TEST(post_gate, a_function_that_throws_does_not_stop_the_burst) {
  auto gate = std::make_shared<post_gate>();
  std::function<void()> drain;
  bool after = false;
  gate->queue([] { throw std::runtime_error("thrown on purpose"); }, [&](auto d) { drain = d; });
  gate->queue([&] { after = true; }, [&](auto d) { drain = d; });
  ASSERT_TRUE(drain);
  EXPECT_NO_THROW(drain());
  EXPECT_TRUE(after);
}

TEST(post_gate, a_closed_gate_queues_nothing) {
  auto gate = std::make_shared<post_gate>();
  int scheduled = 0;
  gate->close();
  EXPECT_FALSE(gate->queue([] {}, [&](auto) { ++scheduled; }));
  EXPECT_EQ(scheduled, 0);
}

}  // namespace
}  // namespace derive::web
