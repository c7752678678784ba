// Checking append requests once, where they enter (core/append_check.hpp).
#include "core/append_check.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace derive {
namespace {

event_input ev(std::string type, std::string key = "", std::string data = "null") {
  return {std::move(type), std::move(key), "", std::move(data)};
}

TEST(check_append, accepts_valid_events_and_fingerprints_only_with_a_key) {
  auto plain = check_append({{ev("a")}, ""});
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->events().size(), 1u);
  EXPECT_TRUE(plain->fingerprint().empty());
  auto keyed = check_append({{ev("a", "k", R"({"x":1})")}, "key-1"});
  ASSERT_TRUE(keyed);
  EXPECT_EQ(keyed->idempotency_key(), "key-1");
  EXPECT_FALSE(keyed->fingerprint().empty());
}

TEST(check_append, refuses_no_events_too_many_and_bad_fields) {
  EXPECT_EQ(check_append({{}, ""}).error().code(), errc::invalid_event);
  EXPECT_EQ(check_append({std::vector<event_input>(1001, ev("a")), ""}).error().code(),
            errc::invalid_event);
  auto bad_type = check_append({{ev("a"), ev("no spaces")}, ""});
  EXPECT_EQ(bad_type.error().code(), errc::invalid_event);
  EXPECT_NE(bad_type.error().message().find("events[1].type"), std::string::npos);
  EXPECT_EQ(check_append({{ev("a", "", "{not json")}, ""}).error().code(), errc::invalid_event);
}

TEST(check_append, refuses_a_bad_idempotency_key) {
  EXPECT_EQ(check_append({{ev("a")}, "has space"}).error().code(),
            errc::invalid_idempotency_key);
  EXPECT_EQ(check_append({{ev("a")}, std::string(129, 'k')}).error().code(),
            errc::invalid_idempotency_key);
}

TEST(check_append, code_and_http_body_share_a_fingerprint) {
  auto in_code = check_append({{ev("t", "k", R"({"a":2,"b":1})")}, "key"});
  auto from_body = parse_append(R"({"data":{"b":1,"a":2},"type":"t","key":"k"})", "key");
  ASSERT_TRUE(in_code && from_body);
  EXPECT_EQ(in_code->fingerprint(), from_body->request.fingerprint());
  EXPECT_FALSE(from_body->was_array);
}

TEST(parse_append, checks_the_key_first_then_nesting_then_json) {
  EXPECT_EQ(parse_append("{not json", "bad key").error().code(), errc::invalid_idempotency_key);
  EXPECT_EQ(parse_append("{not json", "").error().code(), errc::invalid_idempotency_key);
  std::string deep(300, '[');
  auto nested = parse_append(deep, std::nullopt);
  EXPECT_EQ(nested.error().code(), errc::invalid_json);
  EXPECT_NE(nested.error().message().find("deeper than 256"), std::string::npos);
  EXPECT_EQ(parse_append("{not json", std::nullopt).error().code(), errc::invalid_json);
  EXPECT_EQ(parse_append(R"({"type":""})", std::nullopt).error().code(), errc::invalid_event);
}

TEST(parse_append, an_array_keeps_its_shape) {
  auto r = parse_append(R"([{"type":"a"},{"type":"b"}])", std::nullopt);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->was_array);
  EXPECT_EQ(r->request.events().size(), 2u);
  EXPECT_TRUE(r->request.idempotency_key().empty());
}

TEST(append_from_json, checks_events_then_the_key) {
  auto events = nlohmann::json::parse(R"([{"type":"a"}])");
  EXPECT_TRUE(append_from_json(events, "k"));
  EXPECT_EQ(append_from_json(events, "").error().code(), errc::invalid_idempotency_key);
  EXPECT_EQ(append_from_json(nlohmann::json::array(), "bad key").error().code(),
            errc::invalid_event);
}

}  // namespace
}  // namespace derive
