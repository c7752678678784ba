#include "core/json_text.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace derive {
namespace {

using json = nlohmann::json;

TEST(json_text, strings_are_escaped_and_invalid_utf8_is_replaced) {
  EXPECT_EQ(json_string("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  EXPECT_EQ(json_string("\xe2\x82\xac"), "\"\xe2\x82\xac\"");
  EXPECT_EQ(json_string("a\xff" "b"), "\"a\xef\xbf\xbd" "b\"");
  EXPECT_EQ(json_string("\xed\xa0\x80"), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");  // surrogate
  EXPECT_NO_THROW(json::parse(json_string("x\xc3(\xf0\x9f\x98\x80")));
}

TEST(json_text, utf8_validity_follows_rfc_3629) {
  EXPECT_TRUE(is_valid_utf8("plain \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
}

TEST(json_text, unsigned_integers_are_decimal) {
  std::string out = "n=";
  append_uint(out, 18446744073709551615u);
  EXPECT_EQ(out, "n=18446744073709551615");
}

TEST(json_text, a_change_item_is_offset_key_and_verbatim_value) {
  std::string out = "[";
  append_change_item(out, 7, "doc/1", std::string(R"({"a":[1,2]})"));
  out += ',';
  append_change_item(out, 18446744073709551615u, "gone", std::nullopt);
  EXPECT_EQ(out, R"([{"offset":7,"key":"doc/1","value":{"a":[1,2]}},)"
                 R"({"offset":18446744073709551615,"key":"gone","value":null})");
}

// Keys of every kind of valid UTF-8 (control characters, DEL, quotes, 2 to 4
// byte sequences) are encoded as nlohmann::json encodes them, as the hub's
// encoder did before it used append_change_item.
TEST(json_text, change_item_keys_are_encoded_as_nlohmann_does_for_valid_utf8) {
  std::string all_ascii;
  for (int c = 0; c < 0x80; ++c) all_ascii.push_back(static_cast<char>(c));
  for (std::string key : {all_ascii, std::string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                          std::string("\xef\xbf\xbf\xf4\x8f\xbf\xbf"), std::string()}) {
    std::string out;
    append_change_item(out, 1, key, std::nullopt);
    EXPECT_EQ(out, "{\"offset\":1,\"key\":" + json(key).dump() + ",\"value\":null}");
  }
}

// A key that is not valid UTF-8 (only view code can produce one) is encoded
// exactly as snapshots and reads encode it, so that a client sees one key.
TEST(json_text, change_item_keys_that_are_not_utf8_are_encoded_as_in_snapshots) {
  for (std::string key : {"a\xe2\x82" "b", "\xff", "\xed\xa0\x80", "x\xf0\x9f\x98"}) {
    std::string out;
    append_change_item(out, 2, key, std::string("1"));
    EXPECT_EQ(out, "{\"offset\":2,\"key\":" + json_string(key) + ",\"value\":1}");
    EXPECT_NO_THROW(json::parse(out));
  }
  std::string out;
  append_change_item(out, 3, "a\xe2\x82" "b", std::nullopt);  // one U+FFFD per byte
  EXPECT_EQ(out, "{\"offset\":3,\"key\":\"a\xef\xbf\xbd\xef\xbf\xbd" "b\",\"value\":null}");
}

}  // namespace
}  // namespace derive
