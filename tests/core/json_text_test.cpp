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

}  // namespace
}  // namespace derive
