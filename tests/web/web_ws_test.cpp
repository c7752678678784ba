// The WebSocket API of protocol.md against a real runtime and server.
#include <map>
#include <set>
#include <thread>

#include "tests/web/web_fixture.hpp"

namespace derive::webtest {
namespace {

class ws_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override {
    o.snapshot_chunk_items = 10;
    o.max_subscriptions = 5;
    o.max_message_bytes = 64 * 1024;
  }

  struct snapshot {
    uint64_t offset = 0;
    bool reset = false;
    size_t messages = 0;
    std::map<std::string, json> items;
  };

  static json sub_key(const std::string& id, const std::string& view, const std::string& key) {
    return {{"op", "subscribe"}, {"id", id}, {"view", view}, {"key", key}};
  }
  static json sub_prefix(const std::string& id, const std::string& view,
                         const std::string& prefix) {
    return {{"op", "subscribe"}, {"id", id}, {"view", view}, {"prefix", prefix}};
  }

  // Reads a whole (possibly chunked) snapshot for `id`.
  snapshot read_snapshot(ws_connection& c, const std::string& id) {
    snapshot s;
    for (;;) {
      auto m = expect_op(c, "snapshot");
      if (m.is_null()) return s;
      EXPECT_EQ(m["id"], id);
      if (s.messages == 0) {
        s.offset = m["offset"];
        s.reset = m.value("reset", false);
      }
      EXPECT_EQ(m["offset"], s.offset) << "every chunk has the same offset";
      ++s.messages;
      for (auto& item : m["items"]) {
        EXPECT_FALSE(s.items.count(item["key"])) << "a key twice in one snapshot";
        s.items[item["key"].get<std::string>()] = item["value"];
      }
      if (!m["more"].get<bool>()) return s;
    }
  }

  // Reads changes batches for `id` until `n` items arrived.
  std::vector<json> read_changes(ws_connection& c, const std::string& id, size_t n) {
    std::vector<json> items;
    while (items.size() < n) {
      auto m = expect_op(c, "changes");
      if (m.is_null()) break;
      EXPECT_EQ(m["id"], id);
      EXPECT_FALSE(m["items"].empty());
      for (auto& item : m["items"]) items.push_back(item);
    }
    return items;
  }

  void expect_silence(ws_connection& c, std::chrono::milliseconds wait = std::chrono::milliseconds(300)) {
    auto m = c.read(wait);
    EXPECT_FALSE(m.has_value()) << m->dump();
  }

  json error_for(ws_connection& c, const json& msg) {
    c.send(msg);
    return expect_op(c, "error");
  }
  json error_for_text(ws_connection& c, const std::string& text) {
    c.send_text(text);
    return expect_op(c, "error");
  }

  // The connection still answers (a get round trip).
  void expect_answers(ws_connection& c) {
    c.send({{"op", "get"}, {"id", "ping"}, {"view", "docs"}, {"key", "nothing"}});
    auto m = expect_op(c, "value");
    EXPECT_EQ(m["id"], "ping");
  }
};

// --- subscribe -------------------------------------------------------------------

TEST_F(ws_test, a_key_subscription_gets_a_snapshot_then_each_change) {
  uint64_t o1 = put("a", 1);
  view_state("docs", o1);
  auto c = connect_ws();
  c->send(sub_key("s1", "docs", "a"));
  auto snap = read_snapshot(*c, "s1");
  EXPECT_EQ(snap.offset, o1);
  EXPECT_EQ(snap.items, (std::map<std::string, json>{{"a", 1}}));
  uint64_t o2 = put("a", 2);
  put("b", 1);
  uint64_t o3 = del("a");
  auto items = read_changes(*c, "s1", 2);
  EXPECT_EQ(items[0], (json{{"offset", o2}, {"key", "a"}, {"value", 2}}));
  EXPECT_EQ(items[1], (json{{"offset", o3}, {"key", "a"}, {"value", nullptr}}));
  expect_silence(*c);
}

TEST_F(ws_test, a_missing_key_has_an_empty_snapshot) {
  auto c = connect_ws();
  c->send(sub_key("s", "docs", "later"));
  auto snap = read_snapshot(*c, "s");
  EXPECT_EQ(snap.offset, 0u);
  EXPECT_TRUE(snap.items.empty());
  uint64_t o = put("later", "now");
  EXPECT_EQ(read_changes(*c, "s", 1)[0], (json{{"offset", o}, {"key", "later"}, {"value", "now"}}));
}

TEST_F(ws_test, a_prefix_subscription_gets_only_matching_keys) {
  put("x/1", 1);
  put("y/1", 1);
  uint64_t o = put("x/2", 2);
  view_state("docs", o);
  auto c = connect_ws();
  c->send(sub_prefix("p", "docs", "x/"));
  auto snap = read_snapshot(*c, "p");
  EXPECT_EQ(snap.items, (std::map<std::string, json>{{"x/1", 1}, {"x/2", 2}}));
  put("y/2", 2);
  uint64_t o2 = put("x/3", 3);
  EXPECT_EQ(read_changes(*c, "p", 1)[0]["offset"], o2);
  expect_silence(*c);
}

TEST_F(ws_test, large_snapshots_come_in_chunks_with_one_offset) {
  json events = json::array();
  for (int i = 0; i < 35; ++i) {
    events.push_back({{"type", "doc.put"}, {"key", "c/" + std::to_string(100 + i)}, {"data", i}});
  }
  auto r = post_events(events.dump());
  ASSERT_EQ(r.status, 201);
  uint64_t last = r.body_json()["offsets"].back();
  view_state("docs", last);
  auto c = connect_ws();
  c->send(sub_prefix("big", "docs", "c/"));
  auto snap = read_snapshot(*c, "big");
  EXPECT_EQ(snap.messages, 4u);
  EXPECT_EQ(snap.items.size(), 35u);
  EXPECT_EQ(snap.offset, last);
  EXPECT_FALSE(snap.reset);
}

TEST_F(ws_test, a_derived_view_can_be_subscribed) {
  auto c = connect_ws();
  c->send(sub_prefix("t", "titles", ""));
  read_snapshot(*c, "t");
  uint64_t o = put("d1", {{"title", "Hello"}});
  EXPECT_EQ(read_changes(*c, "t", 1)[0], (json{{"offset", o}, {"key", "d1"}, {"value", "Hello"}}));
}

TEST_F(ws_test, a_subscription_resumes_from_an_offset_it_saw) {
  auto first = connect_ws();
  first->send(sub_prefix("r", "docs", "r/"));
  put("r/0", 0);
  auto snap = read_snapshot(*first, "r");
  auto seen = read_changes(*first, "r", snap.items.empty() ? 1 : 0);
  uint64_t from = seen.empty() ? snap.offset : seen.back()["offset"].get<uint64_t>();
  first->kill();

  std::vector<uint64_t> expected;
  for (int i = 1; i <= 3; ++i) {
    expected.push_back(put("r/" + std::to_string(i), i));
    put("other", i);
  }
  auto second = connect_ws();
  auto msg = sub_prefix("r", "docs", "r/");
  msg["from"] = from;
  second->send(msg);
  auto resumed = expect_op(*second, "resumed");
  EXPECT_EQ(resumed["id"], "r");
  EXPECT_EQ(resumed["offset"], from);
  auto items = read_changes(*second, "r", 3);
  std::vector<uint64_t> got;
  for (auto& i : items) got.push_back(i["offset"]);
  EXPECT_EQ(got, expected);
  expect_silence(*second);
  uint64_t live = put("r/4", 4);
  EXPECT_EQ(read_changes(*second, "r", 1)[0]["offset"], live);
}

TEST_F(ws_test, resuming_at_the_current_offset_sends_only_resumed) {
  uint64_t o = put("a", 1);
  view_state("docs", o);
  auto c = connect_ws();
  auto msg = sub_key("s", "docs", "a");
  msg["from"] = o;
  c->send(msg);
  EXPECT_EQ(expect_op(*c, "resumed")["offset"], o);
  expect_silence(*c);
}

TEST_F(ws_test, a_from_no_longer_in_the_changelog_gets_a_reset_snapshot) {
  json events = json::array();
  for (int i = 0; i < 20; ++i) events.push_back({{"type", "doc.put"}, {"key", "z" + std::to_string(i)}, {"data", i}});
  auto r = post_events(events.dump());
  uint64_t last = r.body_json()["offsets"].back();
  view_state("recent", last);  // "recent" keeps 5 offsets of changelog
  auto c = connect_ws();
  auto msg = sub_prefix("old", "recent", "");
  msg["from"] = 1;
  c->send(msg);
  auto snap = read_snapshot(*c, "old");
  EXPECT_TRUE(snap.reset);
  EXPECT_EQ(snap.offset, last);
  EXPECT_EQ(snap.items.size(), 20u);
}

TEST_F(ws_test, a_from_ahead_of_the_view_gets_a_reset_snapshot) {
  uint64_t o = put("a", 1);
  view_state("docs", o);
  auto c = connect_ws();
  auto msg = sub_key("s", "docs", "a");
  msg["from"] = 1000;
  c->send(msg);
  auto snap = read_snapshot(*c, "s");
  EXPECT_TRUE(snap.reset);
  EXPECT_EQ(snap.offset, o);
  EXPECT_EQ(snap.items, (std::map<std::string, json>{{"a", 1}}));
}

// --- unsubscribe and subscription errors ----------------------------------------

TEST_F(ws_test, after_unsubscribed_nothing_more_is_sent) {
  auto c = connect_ws();
  c->send(sub_key("s1", "docs", "a"));
  read_snapshot(*c, "s1");
  c->send({{"op", "unsubscribe"}, {"id", "s1"}});
  EXPECT_EQ(expect_op(*c, "unsubscribed")["id"], "s1");
  put("a", 1);
  expect_silence(*c);
  auto again = error_for(*c, {{"op", "unsubscribe"}, {"id", "s1"}});
  EXPECT_EQ(again["code"], "unknown_subscription");
  EXPECT_EQ(again["id"], "s1");
}

TEST_F(ws_test, an_active_id_cannot_be_used_twice) {
  auto c = connect_ws();
  c->send(sub_key("s1", "docs", "a"));
  read_snapshot(*c, "s1");
  auto dup = error_for(*c, sub_key("s1", "docs", "b"));
  EXPECT_EQ(dup["code"], "duplicate_id");
  EXPECT_EQ(dup["id"], "s1");
  c->send({{"op", "unsubscribe"}, {"id", "s1"}});
  expect_op(*c, "unsubscribed");
  c->send(sub_key("s1", "docs", "b"));
  read_snapshot(*c, "s1");
}

TEST_F(ws_test, a_connection_has_at_most_the_configured_subscriptions) {
  auto c = connect_ws();
  for (int i = 0; i < 5; ++i) {
    std::string id = "s" + std::to_string(i);
    c->send(sub_key(id, "docs", id));
    read_snapshot(*c, id);
  }
  auto e = error_for(*c, sub_key("s5", "docs", "x"));
  EXPECT_EQ(e["code"], "too_many_subscriptions");
  EXPECT_EQ(e["id"], "s5");
}

TEST_F(ws_test, unknown_views_and_bad_parameters_are_errors) {
  auto c = connect_ws();
  auto unknown = error_for(*c, sub_key("s", "nope", "a"));
  EXPECT_EQ(unknown["code"], "unknown_view");
  auto both = sub_key("s", "docs", "a");
  both["prefix"] = "p";
  EXPECT_EQ(error_for(*c, both)["code"], "invalid_parameter");
  EXPECT_EQ(error_for(*c, {{"op", "subscribe"}, {"id", "s"}, {"view", "docs"}})["code"],
            "invalid_parameter");
  auto negative = sub_key("s", "docs", "a");
  negative["from"] = -3;
  EXPECT_EQ(error_for(*c, negative)["code"], "invalid_parameter");
  expect_answers(*c);
}

TEST_F(ws_test, malformed_messages_are_bad_messages_and_the_connection_stays) {
  auto c = connect_ws();
  for (const char* text : {"not json", "[1]", "null", "{}", R"({"id":"x"})",
                           R"({"op":"dance","id":"x"})", R"({"op":"get"})",
                           R"({"op":"get","id":["x"]})"}) {
    auto e = error_for_text(*c, text);
    EXPECT_EQ(e["code"], "bad_message") << text;
    EXPECT_FALSE(e["message"].get<std::string>().empty());
  }
  EXPECT_TRUE(error_for_text(*c, "not json")["id"].is_null());
  EXPECT_EQ(error_for_text(*c, R"({"op":"dance","id":"x"})")["id"], "x");
  auto long_id = error_for(*c, {{"op", "get"}, {"id", std::string(65, 'i')}, {"view", "docs"}, {"key", "k"}});
  EXPECT_EQ(long_id["code"], "bad_message");
  EXPECT_TRUE(long_id["id"].is_null());
  expect_answers(*c);
  expect_healthy();
}

TEST_F(ws_test, an_id_that_cannot_be_read_is_answered_as_null) {
  auto c = connect_ws();
  for (const char* text : {R"({"op":"dance"})", R"({"op":"get","view":"docs","key":"k"})",
                           R"({"op":"get","id":7,"view":"docs","key":"k"})",
                           R"({"op":"get","id":null,"view":"docs","key":"k"})"}) {
    auto e = error_for_text(*c, text);
    EXPECT_EQ(e["code"], "bad_message") << text;
    EXPECT_TRUE(e["id"].is_null()) << text;
  }
  auto long_unknown = error_for(*c, {{"op", "dance"}, {"id", std::string(65, 'i')}});
  EXPECT_TRUE(long_unknown["id"].is_null());
  // 64 characters (not bytes) is still a valid id.
  std::string wide;
  for (int i = 0; i < 64; ++i) wide += "\xc3\xa9";
  c->send({{"op", "get"}, {"id", wide}, {"view", "docs"}, {"key", "k"}});
  EXPECT_EQ(expect_op(*c, "value")["id"], wide);
}

TEST_F(ws_test, errors_of_a_subscribe_and_an_unsubscribe_echo_their_id) {
  auto c = connect_ws();
  auto both = sub_key("s9", "docs", "a");
  both["prefix"] = "";
  auto e = error_for(*c, both);
  EXPECT_EQ(e["code"], "invalid_parameter");
  EXPECT_EQ(e["id"], "s9");
  auto missing = error_for(*c, {{"op", "unsubscribe"}, {"id", "never"}});
  EXPECT_EQ(missing["code"], "unknown_subscription");
  EXPECT_EQ(missing["id"], "never");
}

// --- append and get ---------------------------------------------------------

TEST_F(ws_test, append_answers_with_the_offsets_once_durable) {
  auto c = connect_ws();
  c->send({{"op", "append"}, {"id", "a1"}, {"events", {{{"type", "doc.put"}, {"key", "k"}, {"data", 1}},
                                                       {{"type", "doc.put"}, {"key", "k"}, {"data", 2}}}}});
  auto m = expect_op(*c, "appended");
  EXPECT_EQ(m["id"], "a1");
  EXPECT_EQ(m["offsets"], json::parse("[1,2]"));
  EXPECT_FALSE(m.contains("replayed"));
  EXPECT_EQ(get("/v1/views/docs/k?after=2").body_json()["value"], 2);
}

TEST_F(ws_test, append_is_idempotent_and_shares_keys_with_http) {
  auto c = connect_ws();
  json ev = {{"type", "doc.put"}, {"key", "k"}, {"data", 1}};
  json msg = {{"op", "append"}, {"id", "a"}, {"events", {ev}}, {"idempotency_key", "shared"}};
  c->send(msg);
  EXPECT_EQ(expect_op(*c, "appended")["offsets"], json::parse("[1]"));
  c->send(msg);
  auto replay = expect_op(*c, "appended");
  EXPECT_EQ(replay["offsets"], json::parse("[1]"));
  EXPECT_EQ(replay["replayed"], true);
  auto http = post_events(json::array({ev}).dump(), {{"Idempotency-Key", "shared"}});
  EXPECT_EQ(http.status, 200) << http.body;
  EXPECT_EQ(http.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(http.body_json(), json::parse(R"({"offsets":[1]})"));
  msg["events"][0]["data"] = 2;
  auto reused = error_for(*c, msg);
  EXPECT_EQ(reused["code"], "idempotency_key_reused");
  EXPECT_EQ(reused["id"], "a");
  EXPECT_EQ(get("/v1/events").body_json()["head"], 1);
}

TEST_F(ws_test, append_errors_name_their_code) {
  auto c = connect_ws();
  EXPECT_EQ(error_for(*c, {{"op", "append"}, {"id", "a"}, {"events", {{{"type", "no spaces"}}}}})["code"],
            "invalid_event");
  EXPECT_EQ(error_for(*c, {{"op", "append"}, {"id", "a"}, {"events", json::array()}})["code"],
            "invalid_event");
  EXPECT_EQ(error_for(*c, {{"op", "append"}, {"id", "a"}, {"events", {{{"type", "t"}}}},
                           {"idempotency_key", "white space"}})["code"],
            "invalid_idempotency_key");
  EXPECT_EQ(get("/v1/events").body_json()["head"], 0);
}

TEST_F(ws_test, get_reads_a_key_after_an_offset) {
  auto c = connect_ws();
  c->send({{"op", "append"}, {"id", "a"}, {"events", {{{"type", "doc.put"}, {"key", "g"}, {"data", "v"}}}}});
  uint64_t o = expect_op(*c, "appended")["offsets"][0];
  c->send({{"op", "get"}, {"id", "g1"}, {"view", "docs"}, {"key", "g"}, {"after", o}});
  EXPECT_EQ(expect_op(*c, "value"), (json{{"op", "value"}, {"id", "g1"}, {"key", "g"}, {"value", "v"}, {"offset", o}}));
  c->send({{"op", "get"}, {"id", "g2"}, {"view", "docs"}, {"key", "none"}});
  auto none = expect_op(*c, "value");
  EXPECT_TRUE(none["value"].is_null());
  EXPECT_TRUE(none.contains("offset"));
  auto late = error_for(*c, {{"op", "get"}, {"id", "g3"}, {"view", "docs"}, {"key", "g"},
                             {"after", 1000}, {"timeout_ms", 100}});
  EXPECT_EQ(late["code"], "not_caught_up");
  EXPECT_EQ(late["id"], "g3");
  EXPECT_EQ(error_for(*c, {{"op", "get"}, {"id", "g4"}, {"view", "nope"}, {"key", "g"}})["code"],
            "unknown_view");
}

TEST_F(ws_test, a_get_of_an_unknown_view_with_after_is_answered_without_waiting) {
  auto c = connect_ws();
  // A 30 s wait would outlast error_for's 5 s deadline.
  auto e = error_for(*c, {{"op", "get"}, {"id", "g"}, {"view", "nope"}, {"key", "k"},
                          {"after", 1000}, {"timeout_ms", 30000}});
  EXPECT_EQ(e["code"], "unknown_view");
  EXPECT_EQ(e["id"], "g");
}

// --- frames the server refuses -------------------------------------------------

TEST_F(ws_test, a_binary_frame_is_closed_with_1003) {
  auto c = connect_ws();
  c->send_binary("\x01\x02");
  auto closed = c->wait_close();
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1003);
  expect_healthy();
  expect_answers(*connect_ws());
}

TEST_F(ws_test, a_message_over_the_limit_is_closed_with_1009) {
  auto c = connect_ws();
  c->send_text(R"({"op":"get","id":")" + std::string(70 * 1024, 'x') + "\"}");
  auto closed = c->wait_close();
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1009);
  expect_healthy();
  expect_answers(*connect_ws());
}

TEST_F(ws_test, invalid_utf8_is_closed_with_1007) {
  auto c = connect_ws();
  c->send_text("{\"op\":\"get\",\"id\":\"\xff\xfe\"}");
  auto closed = c->wait_close();
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1007);
  expect_healthy();
  expect_answers(*connect_ws());
}

// --- raw frames: close codes, frames sent with the upgrade ---------------------

constexpr const char* raw_upgrade =
    "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// One masked client frame (FIN set).
std::string client_frame(unsigned opcode, const std::string& payload) {
  std::string f(1, static_cast<char>(0x80 | opcode));
  size_t n = payload.size();
  if (n < 126) {
    f += static_cast<char>(0x80 | n);
  } else {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xff);
  }
  const char mask[4] = {0x11, 0x22, 0x33, 0x44};
  f.append(mask, 4);
  for (size_t i = 0; i < n; ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
  return f;
}

std::string close_payload(unsigned code) {
  return {static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
}

struct server_frame {
  unsigned opcode = 0;
  std::string payload;
};

// The next unmasked server frame (payloads under 64 KiB).
std::optional<server_frame> read_server_frame(http_connection& c) {
  auto head = c.read_bytes(2);
  if (!head) return std::nullopt;
  size_t n = static_cast<unsigned char>((*head)[1]) & 0x7f;
  if (n == 126) {
    auto ext = c.read_bytes(2);
    if (!ext) return std::nullopt;
    n = (static_cast<unsigned char>((*ext)[0]) << 8) | static_cast<unsigned char>((*ext)[1]);
  }
  auto payload = c.read_bytes(n);
  if (!payload) return std::nullopt;
  return server_frame{static_cast<unsigned char>((*head)[0]) & 0x0fu, std::move(*payload)};
}

// The code of the server's close frame, skipping other frames; 0 when none.
unsigned close_code_answered(http_connection& c) {
  while (auto f = read_server_frame(c)) {
    if (f->opcode != 8) continue;
    if (f->payload.size() < 2) return 1005;
    return (static_cast<unsigned char>(f->payload[0]) << 8) |
           static_cast<unsigned char>(f->payload[1]);
  }
  return 0;
}

TEST_F(ws_test, frames_sent_with_the_upgrade_request_are_read) {
  http_connection c(port());
  auto r = c.raw(std::string(raw_upgrade) +
                 client_frame(1, R"({"op":"unsubscribe","id":"early"})") +
                 client_frame(1, R"({"op":"unsubscribe","id":"second"})"));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 101);
  for (const char* id : {"early", "second"}) {
    auto f = read_server_frame(c);
    ASSERT_TRUE(f) << id;
    auto msg = json::parse(f->payload);
    EXPECT_EQ(msg["op"], "error") << f->payload;
    EXPECT_EQ(msg["id"], id) << f->payload;
    EXPECT_EQ(msg["code"], "unknown_subscription") << f->payload;
  }
  ASSERT_TRUE(c.write(client_frame(8, close_payload(1000))));
  EXPECT_EQ(close_code_answered(c), 1000u);
}

TEST_F(ws_test, many_messages_in_one_write_are_each_answered_in_order) {
  http_connection c(port());
  ASSERT_EQ(c.raw(raw_upgrade)->status, 101);
  std::string burst;
  constexpr int n = 400;  // small messages decoded from one buffer, answered in order
  for (int i = 0; i < n; ++i) {
    burst += client_frame(1, R"({"op":"unsubscribe","id":"m)" + std::to_string(i) + "\"}");
  }
  ASSERT_TRUE(c.write(burst));
  for (int i = 0; i < n; ++i) {
    auto f = read_server_frame(c);
    ASSERT_TRUE(f) << i;
    auto msg = json::parse(f->payload);
    ASSERT_EQ(msg["id"], "m" + std::to_string(i)) << f->payload;
    EXPECT_EQ(msg["code"], "unknown_subscription") << f->payload;
  }
  expect_healthy();
}

TEST_F(ws_test, close_codes_outside_rfc_6455_are_answered_with_1002) {
  for (unsigned code : {0u, 999u, 1004u, 1005u, 1006u, 1012u, 1013u, 1015u, 2999u, 5000u,
                        65535u}) {
    http_connection c(port());
    auto r = c.raw(raw_upgrade);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 101);
    ASSERT_TRUE(c.write(client_frame(8, close_payload(code))));
    EXPECT_EQ(close_code_answered(c), 1002u) << code;
    EXPECT_TRUE(c.closed_by_peer()) << code;
  }
  for (unsigned code : {1000u, 1001u, 1003u, 1007u, 1011u, 3000u, 4999u}) {
    http_connection c(port());
    ASSERT_EQ(c.raw(raw_upgrade)->status, 101);
    ASSERT_TRUE(c.write(client_frame(8, close_payload(code))));
    EXPECT_EQ(close_code_answered(c), code) << "a valid code is echoed";
  }
  expect_healthy();
  expect_answers(*connect_ws());
}

// The server's own framing (web/ws_frame): what a raw client sees.
TEST_F(ws_test, a_ping_is_answered_with_a_pong_of_its_payload) {
  http_connection c(port());
  ASSERT_EQ(c.raw(raw_upgrade)->status, 101);
  ASSERT_TRUE(c.write(client_frame(9, "are you there")));
  auto f = read_server_frame(c);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->opcode, 10u);
  EXPECT_EQ(f->payload, "are you there");
}

TEST_F(ws_test, a_fragmented_message_is_one_request) {
  http_connection c(port());
  ASSERT_EQ(c.raw(raw_upgrade)->status, 101);
  std::string first = client_frame(1, R"({"op":"unsubscribe",)");
  first[0] = 0x01;  // FIN clear
  std::string last = client_frame(0, R"("id":"frag"})");
  ASSERT_TRUE(c.write(first + client_frame(9, "") + last));
  auto pong = read_server_frame(c);
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->opcode, 10u);
  auto f = read_server_frame(c);
  ASSERT_TRUE(f);
  auto msg = json::parse(f->payload);
  EXPECT_EQ(msg["id"], "frag") << f->payload;
  EXPECT_EQ(msg["code"], "unknown_subscription") << f->payload;
}

TEST_F(ws_test, an_unmasked_frame_is_closed_with_1002) {
  http_connection c(port());
  ASSERT_EQ(c.raw(raw_upgrade)->status, 101);
  ASSERT_TRUE(c.write(std::string("\x81\x02hi")));
  EXPECT_EQ(close_code_answered(c), 1002u);
  // Failing the connection closes it right after the close frame (RFC 6455,
  // 7.1.7), not after the grace (stalled_write_timeout: 10 s here) that a
  // client's close frame, which is no longer read, could not end.
  EXPECT_TRUE(c.closed_by_peer(std::chrono::seconds(5)));
  expect_healthy();
}

// Pings sent faster than their pongs can go out are answered by the pong of
// the latest one (RFC 6455, 5.5.3), so one never waits behind older ones.
TEST_F(ws_test, of_pings_sent_together_the_latest_is_answered) {
  http_connection c(port());
  ASSERT_EQ(c.raw(raw_upgrade)->status, 101);
  std::string pings;
  for (int i = 0; i < 300; ++i) pings += client_frame(9, "p" + std::to_string(1000 + i));
  ASSERT_TRUE(c.write(pings));
  std::vector<std::string> pongs;
  while (pongs.empty() || pongs.back() != "p1299") {
    auto f = read_server_frame(c);
    ASSERT_TRUE(f) << "no pong of the latest ping; got " << pongs.size() << " pongs";
    if (f->opcode == 10) pongs.push_back(f->payload);
  }
  EXPECT_LT(pongs.size(), 300u);  // not one per ping: the older ones were replaced
  expect_healthy();
}

TEST_F(ws_test, an_upgrade_without_version_13_is_426_and_without_a_key_400) {
  http_connection c(port());
  std::string v8 = raw_upgrade;
  v8.replace(v8.find("Version: 13"), 11, "Version: 8");
  auto r = c.raw(v8);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 426);
  http_connection d(port());
  std::string keyless = raw_upgrade;
  keyless.replace(keyless.find("dGhl"), 24, "short");
  r = d.raw(keyless);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  // RFC 6455 11.3.1 and 11.3.5: each at most once.
  for (const char* twice : {"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n",
                            "Sec-WebSocket-Version: 13\r\n"}) {
    http_connection e(port());
    std::string doubled = raw_upgrade;
    doubled.insert(doubled.size() - 2, twice);
    r = e.raw(doubled);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << twice;
  }
}

// --- handshake -----------------------------------------------------------------------

TEST_F(ws_test, a_foreign_origin_is_refused_with_403) {
  ws_connection evil(port(), {{"Origin", "http://evil.example"}});
  EXPECT_EQ(evil.handshake_status(), 403);
  ws_connection local(port(), {{"Origin", "http://localhost:5173"}});
  EXPECT_EQ(local.handshake_status(), 101);
  ws_connection own(port(), {{"Origin", "http://127.0.0.1:" + std::to_string(port())}});
  EXPECT_EQ(own.handshake_status(), 101);
  ws_connection none(port());
  EXPECT_EQ(none.handshake_status(), 101);
  expect_healthy();
}

TEST_F(ws_test, an_upgrade_elsewhere_is_404) {
  ws_connection c(port(), {}, "/v1/other");
  EXPECT_EQ(c.handshake_status(), 404);
}

TEST_F(ws_test, stopping_the_server_closes_connections_with_1001) {
  auto c = connect_ws();
  expect_answers(*c);
  std::thread stopper([&] { server_->stop(); });
  auto closed = c->wait_close();
  stopper.join();
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1001);
}

class ws_allow_list_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override {
    o.allowed_origins = {"https://app.example.com"};
  }
};

TEST_F(ws_allow_list_test, only_listed_origins_may_connect) {
  EXPECT_EQ(ws_connection(port(), {{"Origin", "https://app.example.com"}}).handshake_status(), 101);
  EXPECT_EQ(ws_connection(port(), {{"Origin", "http://localhost:3000"}}).handshake_status(), 403);
}

class ws_ping_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override {
    o.ping_interval = std::chrono::milliseconds(100);
    o.pong_timeout = std::chrono::milliseconds(300);
    o.stalled_write_timeout = std::chrono::seconds(1);
  }
};

TEST_F(ws_ping_test, a_client_that_answers_pings_stays_connected) {
  auto c = connect_ws();
  EXPECT_FALSE(c->read(std::chrono::milliseconds(1200)));  // answers pings meanwhile
  EXPECT_TRUE(c->is_open());
  c->send({{"op", "get"}, {"id", "g"}, {"view", "docs"}, {"key", "k"}});
  EXPECT_EQ(expect_op(*c, "value")["id"], "g");
}

TEST_F(ws_ping_test, a_client_that_does_not_answer_pings_is_closed_with_1001) {
  auto c = connect_ws();
  std::this_thread::sleep_for(std::chrono::milliseconds(900));  // no reads: no pongs
  auto closed = c->wait_close();
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1001);
  expect_healthy();
}

// A message begun must arrive whole within idle_timeout; a client that keeps
// sending complete messages, however slowly, stays.
class ws_message_deadline_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override {
    o.idle_timeout = std::chrono::milliseconds(400);
    o.stalled_write_timeout = std::chrono::seconds(1);
  }
};

TEST_F(ws_message_deadline_test, a_message_trickled_byte_by_byte_is_closed_with_1008) {
  http_connection c(port());
  ASSERT_EQ(c.raw(raw_upgrade)->status, 101);
  std::string frame = client_frame(1, R"({"op":"unsubscribe","id":"slow"})");
  // 12 of its bytes, one per 100 ms: talking all the time, never done. (The
  // server closes 0.4-0.65 s after the first; its close frame waits to be read.)
  for (size_t i = 0; i < 12; ++i) {
    if (!c.write(frame.substr(i, 1))) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(close_code_answered(c), 1008u);
  expect_healthy();
}

TEST_F(ws_message_deadline_test, slow_whole_messages_and_pings_in_between_are_fine) {
  http_connection c(port());
  ASSERT_EQ(c.raw(raw_upgrade)->status, 101);
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::string id = "s" + std::to_string(i);
    ASSERT_TRUE(c.write(client_frame(1, R"({"op":"unsubscribe","id":")" + id + "\"}")));
    auto f = read_server_frame(c);
    ASSERT_TRUE(f) << id;
    EXPECT_EQ(json::parse(f->payload)["id"], id) << f->payload;
  }
  // A fragmented message whose pieces come within the deadline, a ping between them.
  std::string first = client_frame(1, R"({"op":"unsubscribe",)");
  first[0] = 0x01;  // FIN clear
  ASSERT_TRUE(c.write(first));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  ASSERT_TRUE(c.write(client_frame(9, "")));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  ASSERT_TRUE(c.write(client_frame(0, R"("id":"frag"})")));
  for (int i = 0; i < 2; ++i) {  // the pong, then the answer
    auto f = read_server_frame(c);
    ASSERT_TRUE(f);
    if (f->opcode == 10) continue;
    EXPECT_EQ(json::parse(f->payload)["id"], "frag") << f->payload;
  }
}

}  // namespace
}  // namespace derive::webtest
