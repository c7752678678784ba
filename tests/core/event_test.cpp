// Specification of event validation (protocol.md, "Events"), fingerprints and
// Idempotency-Key syntax.

#include "core/event.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

namespace derive {
namespace {

using json = nlohmann::json;

class event_parsing : public ::testing::Test {
 protected:
  parsed_events parse_ok(const std::string& body) {
    auto r = parse_events(body);
    EXPECT_TRUE(r.has_value()) << body << " -> " << (r ? "" : r.error().to_string());
    return r ? *r : parsed_events{};
  }

  status parse_error(const std::string& body) {
    auto r = parse_events(body);
    EXPECT_FALSE(r.has_value()) << body;
    return r ? status::ok() : r.error();
  }

  // Expects invalid_event whose message starts with `field`.
  void expect_invalid_event(const std::string& body, const std::string& field) {
    auto st = parse_error(body);
    EXPECT_EQ(st.code(), errc::invalid_event) << st.to_string();
    EXPECT_EQ(st.message().rfind(field, 0), 0u) << st.message();
  }

  static std::string array_of(size_t n) {
    json a = json::array();
    for (size_t i = 0; i < n; ++i) a.push_back({{"type", "t"}});
    return a.dump();
  }

  static std::string fingerprint(const std::string& body) {
    auto r = parse_events(body);
    return r ? r->fingerprint : "error";
  }
};

TEST_F(event_parsing, single_event_gets_defaults) {
  auto p = parse_ok(R"({"type":"doc.put"})");
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_FALSE(p.was_array);
  EXPECT_EQ(p.events[0].type, "doc.put");
  EXPECT_EQ(p.events[0].key, "");
  EXPECT_EQ(p.events[0].subject, "");
  EXPECT_EQ(p.events[0].data, "null");
}

TEST_F(event_parsing, all_members_are_kept_and_data_is_compact) {
  auto p = parse_ok(R"({"type":"a","key":"k","subject":"u-4","data":{ "b" : [1, 2] , "a":true }})");
  EXPECT_EQ(p.events[0].key, "k");
  EXPECT_EQ(p.events[0].subject, "u-4");
  EXPECT_EQ(p.events[0].data, R"({"a":true,"b":[1,2]})");
}

TEST_F(event_parsing, array_keeps_order) {
  auto p = parse_ok(R"([{"type":"a"},{"type":"b"},{"type":"c"}])");
  EXPECT_TRUE(p.was_array);
  ASSERT_EQ(p.events.size(), 3u);
  EXPECT_EQ(p.events[2].type, "c");
}

TEST_F(event_parsing, type_accepts_every_allowed_character_up_to_128) {
  parse_ok(R"({"type":"AZaz09._:-"})");
  parse_ok(json{{"type", std::string(128, 'x')}}.dump());
}

TEST_F(event_parsing, type_is_required) {
  expect_invalid_event(R"({"key":"k"})", "event.type is required");
  expect_invalid_event(R"([{"type":"a"},{"key":"k"}])", "events[1].type is required");
}

TEST_F(event_parsing, type_must_follow_the_character_rule) {
  const std::string rule = ".type must be 1-128 characters of A-Z a-z 0-9 . _ : -";
  expect_invalid_event(R"({"type":""})", "event" + rule);
  expect_invalid_event(json{{"type", std::string(129, 'x')}}.dump(), "event" + rule);
  expect_invalid_event(R"({"type":"a b"})", "event" + rule);
  expect_invalid_event(R"({"type":"a/b"})", "event" + rule);
  expect_invalid_event(R"({"type":"caf\u00e9"})", "event" + rule);
  expect_invalid_event(R"({"type":7})", "event" + rule);
  expect_invalid_event(R"([{"type":"a"},{"type":"a"},{"type":"a"},{"type":"x y"}])",
                       "events[3]" + rule);
}

TEST_F(event_parsing, key_is_a_string_of_at_most_1024_bytes) {
  parse_ok(json{{"type", "t"}, {"key", std::string(1024, 'k')}}.dump());
  expect_invalid_event(json{{"type", "t"}, {"key", std::string(1025, 'k')}}.dump(),
                       "event.key must be at most 1024 bytes");
  expect_invalid_event(R"({"type":"t","key":5})", "event.key must be a string");
  expect_invalid_event(R"([{"type":"t","key":null}])", "events[0].key must be a string");
}

TEST_F(event_parsing, key_limit_counts_bytes_not_characters) {
  std::string euro = "\xe2\x82\xac";  // 3 bytes
  std::string key;
  for (int i = 0; i < 342; ++i) key += euro;  // 1026 bytes, 342 characters
  expect_invalid_event(json{{"type", "t"}, {"key", key}}.dump(), "event.key must be at most");
}

TEST_F(event_parsing, subject_is_a_string_of_at_most_256_bytes) {
  parse_ok(json{{"type", "t"}, {"subject", std::string(256, 's')}}.dump());
  expect_invalid_event(json{{"type", "t"}, {"subject", std::string(257, 's')}}.dump(),
                       "event.subject must be at most 256 bytes");
  expect_invalid_event(R"([{"type":"t"},{"type":"t","subject":{}}])",
                       "events[1].subject must be a string");
}

TEST_F(event_parsing, data_may_be_any_json) {
  for (auto data : {"null", "1", "-2.5", "\"s\"", "[1,{}]", "{\"x\":{\"y\":[]}}", "true"})
    EXPECT_EQ(parse_ok(std::string(R"({"type":"t","data":)") + data + "}").events[0].data, data);
}

TEST_F(event_parsing, unknown_member_is_rejected_by_name) {
  auto st = parse_error(R"({"type":"t","offset":3})");
  EXPECT_EQ(st.code(), errc::invalid_event);
  EXPECT_NE(st.message().find("\"offset\""), std::string::npos) << st.message();
  expect_invalid_event(R"([{"type":"t"},{"type":"t","Type":"x"}])", "events[1] has an unknown member");
}

TEST_F(event_parsing, event_must_be_an_object) {
  expect_invalid_event(R"([{"type":"t"},"t"])", "events[1] must be a JSON object");
  expect_invalid_event(R"([[{"type":"t"}]])", "events[0] must be a JSON object");
  for (auto body : {"\"t\"", "7", "null", "true"})
    EXPECT_EQ(parse_error(body).code(), errc::invalid_event) << body;
}

TEST_F(event_parsing, array_holds_1_to_1000_events) {
  expect_invalid_event("[]", "events must hold 1-1000 events, not 0");
  expect_invalid_event(array_of(1001), "events must hold 1-1000 events, not 1001");
  EXPECT_EQ(parse_ok(array_of(1000)).events.size(), 1000u);
}

TEST_F(event_parsing, body_that_is_not_json_is_invalid_json) {
  for (auto body : {"", "{", "{\"type\":\"t\"", "type=t", "{\"type\":\"t\"} x", "[1,]"})
    EXPECT_EQ(parse_error(body).code(), errc::invalid_json) << body;
}

TEST_F(event_parsing, numbers_are_kept_exactly_or_refused_naming_the_field) {
  expect_invalid_event(R"([{"type":"t","data":{"amount":18446744073709551616}}])",
                       "events[0].data.amount is an integer beyond 64 bits");
  expect_invalid_event(R"({"type":"t","data":[1, 0.1000000000000000055511151231257827]})",
                       "event.data[1] is the number");
  auto p = parse_ok(R"({"type":"t","data":{"u":18446744073709551615,"i":-9223372036854775808,)"
                    R"("f":0.1,"e":1e300}})");
  EXPECT_EQ(p.events[0].data,
            R"({"e":1e+300,"f":0.1,"i":-9223372036854775808,"u":18446744073709551615})");
}

TEST_F(event_parsing, duplicate_member_names_are_refused_at_any_depth) {
  expect_invalid_event(R"({"type":"t","type":"u"})", "event.type appears twice");
  expect_invalid_event(R"([{"type":"t"},{"type":"t","data":{"a":{"b":1,"b":2}}}])",
                       "events[1].data.a.b appears twice");
}

TEST_F(event_parsing, json_errors_say_where) {
  auto st = parse_error(R"({"type":"t",})");
  EXPECT_EQ(st.code(), errc::invalid_json);
  EXPECT_NE(st.message().find("column"), std::string::npos) << st.message();
}

TEST_F(event_parsing, invalid_utf8_in_the_body_is_invalid_json) {
  EXPECT_EQ(parse_error("{\"type\":\"t\",\"key\":\"\xff\"}").code(), errc::invalid_json);
  EXPECT_EQ(parse_error("{\"type\":\"t\",\"data\":{\"a\":\"\xc3\x28\"}}").code(), errc::invalid_json);
  EXPECT_EQ(parse_error("{\"type\":\"t\",\"data\":\"\xed\xa0\x80\"}").code(), errc::invalid_json);
}

TEST_F(event_parsing, invalid_utf8_in_a_built_value_is_invalid_event) {
  json in_key = {{"type", "t"}, {"key", "\xff"}};
  json in_subject = {{"type", "t"}, {"subject", "a\xe2\x82"}};
  json in_data = {{"type", "t"}, {"data", {{"x", "\xc0\xaf"}}}};
  json in_data_member = json::array({{{"type", "t"}, {"data", {{"\xfe", 1}}}}});
  EXPECT_EQ(events_from_json(in_key).error().message(), "event.key must be valid UTF-8");
  EXPECT_EQ(events_from_json(in_subject).error().code(), errc::invalid_event);
  EXPECT_EQ(events_from_json(in_data).error().message(),
            "event.data contains a string that is not valid UTF-8");
  EXPECT_EQ(events_from_json(in_data_member).error().code(), errc::invalid_event);
}

TEST_F(event_parsing, fingerprint_ignores_whitespace_and_member_order) {
  auto a = fingerprint(R"([{"type":"t","key":"k","data":{"x":1,"y":[1,2]}}])");
  auto b = fingerprint(" [ {\"data\" : {\"y\":[1, 2], \"x\":1},\n\"key\":\"k\", \"type\":\"t\"} ] ");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST_F(event_parsing, fingerprint_differs_for_different_values) {
  auto base = fingerprint(R"({"type":"t","data":{"x":1}})");
  EXPECT_NE(base, fingerprint(R"({"type":"t","data":{"x":2}})"));
  EXPECT_NE(base, fingerprint(R"({"type":"u","data":{"x":1}})"));
  EXPECT_NE(base, fingerprint(R"([{"type":"t","data":{"x":1}},{"type":"t","data":{"x":1}}])"));
}

TEST_F(event_parsing, single_event_and_array_of_it_share_a_fingerprint) {
  EXPECT_EQ(fingerprint(R"({"type":"t"})"), fingerprint(R"([{"type":"t"}])"));
}

TEST(idempotency_key, accepts_1_to_128_visible_ascii_characters) {
  EXPECT_TRUE(validate_idempotency_key("a"));
  EXPECT_TRUE(validate_idempotency_key("!~azAZ09-_.:/{}"));
  EXPECT_TRUE(validate_idempotency_key(std::string(128, 'k')));
}

TEST(idempotency_key, rejects_everything_else) {
  for (std::string key : {std::string(), std::string(129, 'k'), std::string("a b"),
                          std::string("a\tb"), std::string("a\x7f"), std::string("caf\xc3\xa9")})
    EXPECT_EQ(validate_idempotency_key(key).code(), errc::invalid_idempotency_key) << key;
}

TEST(event_json, has_offset_ts_type_key_data) {
  event e{7, 1700000000000, "doc.put", "doc-1", "", R"({"a":1})"};
  EXPECT_EQ(e.to_json(),
            R"({"offset":7,"ts":1700000000000,"type":"doc.put","key":"doc-1","data":{"a":1}})");
}

TEST(event_json, has_subject_only_when_set) {
  event e{1, 2, "t", "", "user-4", "null"};
  EXPECT_EQ(e.to_json(), R"({"offset":1,"ts":2,"type":"t","key":"","data":null,"subject":"user-4"})");
}

TEST(event_json, escapes_strings) {
  event e{1, 2, "t", "a\"b\\c\n\x01\xe2\x82\xac", "", "null"};
  auto parsed = json::parse(e.to_json());
  EXPECT_EQ(parsed["key"], "a\"b\\c\n\x01\xe2\x82\xac");
}


// Events built in code (the C++ API) follow the same rules as parsed ones.
TEST(event_inputs, accept_valid_events) {
  EXPECT_TRUE(validate_inputs({{"doc.put", "k", "user-1", R"({"a":1})"}}));
}

TEST(event_inputs, name_the_field_and_index) {
  auto st = validate_inputs({{"ok", "", "", "null"}, {"no spaces", "", "", "null"}});
  EXPECT_EQ(st.code(), errc::invalid_event);
  EXPECT_EQ(st.message().rfind("events[1].type", 0), 0u) << st.message();
  st = validate_inputs({{"t", std::string(1025, 'k'), "", "null"}});
  EXPECT_EQ(st.message().rfind("event.key", 0), 0u) << st.message();
  st = validate_inputs({{"t", "", std::string(257, 's'), "null"}});
  EXPECT_EQ(st.message().rfind("event.subject", 0), 0u) << st.message();
  st = validate_inputs({{"t", "\xff", "", "null"}});
  EXPECT_EQ(st.message().rfind("event.key", 0), 0u) << st.message();
  st = validate_inputs({{"t", "", "", "{not json"}});
  EXPECT_EQ(st.message().rfind("event.data", 0), 0u) << st.message();
}

TEST(event_inputs, data_with_a_duplicate_member_or_an_inexact_number_is_refused) {
  auto dup = validate_inputs({{"t", "", "", R"({"a":1,"a":2})"}});
  EXPECT_EQ(dup.code(), errc::invalid_event);
  EXPECT_EQ(dup.message().rfind("event.data.a appears twice", 0), 0u) << dup.message();
  auto big = validate_inputs({{"t", "", "", "[1]"}, {"t", "", "", "[99999999999999999999]"}});
  EXPECT_EQ(big.message().rfind("events[1].data[0] is an integer beyond 64 bits", 0), 0u)
      << big.message();
}

TEST(event_inputs, hold_1_to_1000_events) {
  EXPECT_EQ(validate_inputs({}).code(), errc::invalid_event);
  EXPECT_EQ(validate_inputs(std::vector<event_input>(1001, {"t", "", "", "null"})).code(),
            errc::invalid_event);
  EXPECT_TRUE(validate_inputs(std::vector<event_input>(1000, {"t", "", "", "null"})));
}

TEST(parse_events, computes_the_fingerprint_only_when_asked) {
  const std::string body = R"({"key":"k","type":"t","data":{"b":1,"a":2}})";
  auto with = parse_events(body);
  auto without = parse_events(body, false);
  ASSERT_TRUE(with);
  ASSERT_TRUE(without);
  EXPECT_FALSE(with->fingerprint.empty());
  EXPECT_TRUE(without->fingerprint.empty());
  EXPECT_EQ(without->events[0].data, with->events[0].data);
  // The checks do not depend on it.
  EXPECT_EQ(parse_events(R"({"type":"t","x":1})", false).error().code(), errc::invalid_event);
}

TEST(event_inputs, fingerprint_like_the_same_body_sent_over_http) {
  auto parsed = parse_events(R"({"key":"k","type":"t","data":{"b":1,"a":2}})");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(fingerprint_inputs({{"t", "k", "", R"({"a":2,"b":1})"}}), parsed->fingerprint);
  EXPECT_NE(fingerprint_inputs({{"t", "k", "", R"({"a":2,"b":2})"}}), parsed->fingerprint);
}

}  // namespace
}  // namespace derive
