// Specification of core/json_check.hpp: what a parse would silently change is
// found, with its path; everything a parse keeps exactly passes.
#include "core/json_check.hpp"

#include <gtest/gtest.h>

#include <string>

namespace derive {
namespace {

// The issue's description under root "x", or "" when there is none.
std::string issue_of(const std::string& text) {
  auto c = check_json(text);
  EXPECT_TRUE(c.well_formed) << text;
  return c.issue ? c.issue->describe("x") : "";
}

TEST(json_check, values_a_parse_keeps_exactly_pass) {
  for (const char* text :
       {"null", "{}", "[]", R"({"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]})",
        "9223372036854775807", "-9223372036854775808", "18446744073709551615", "0.1", "1.50",
        "1e3", "1E+2", "-0.0", "-0", "0e999999999999999999999", "5e-324", "1.7976931348623157e308",
        "123456789012345.6", "[0.30000000000000004, 2.5e-8, 100]"}) {
    EXPECT_EQ(issue_of(text), "") << text;
  }
}

TEST(json_check, integers_beyond_64_bits_are_named) {
  EXPECT_EQ(issue_of(R"({"data":{"amount":18446744073709551616}})").rfind(
                "x.data.amount is an integer beyond 64 bits", 0),
            0u);
  EXPECT_NE(issue_of("[1,-9223372036854775809]").find("x[1] is an integer beyond 64 bits"),
            std::string::npos);
  EXPECT_NE(issue_of("100000000000000000000000000000").find("beyond 64 bits"), std::string::npos);
}

TEST(json_check, numbers_a_double_cannot_hold_are_named) {
  for (const char* text : {"1.00000000000000001", "0.1000000000000000055511151231257827",
                           "1e-400", "18446744073709551616.0", "1.8446744073709551616e19",
                           "4.9e-325", "9007199254740993.0"}) {
    auto issue = issue_of(std::string("[") + text + "]");
    EXPECT_EQ(issue.rfind("x[0] is the number ", 0), 0u) << text << ": " << issue;
    EXPECT_NE(issue.find("cannot hold exactly"), std::string::npos) << issue;
  }
}

TEST(json_check, duplicate_member_names_are_named_at_any_depth) {
  EXPECT_EQ(issue_of(R"({"type":"a","type":"b"})").rfind("x.type appears twice", 0), 0u);
  EXPECT_EQ(issue_of(R"([{"a":1},{"data":{"n":[{"k":1,"j":2,"k":3}]}}])")
                .rfind("x[1].data.n[0].k appears twice", 0),
            0u);
  EXPECT_EQ(issue_of(R"({"a b":{"q":1,"q":1}})").rfind(R"(x["a b"].q appears twice)", 0), 0u);
  // The same name in sibling objects is not a duplicate.
  EXPECT_EQ(issue_of(R"([{"a":1},{"a":1}])"), "");
}

TEST(json_check, the_first_issue_is_reported) {
  EXPECT_NE(issue_of(R"({"a":[1e-400],"b":18446744073709551616})").find("x.a[0]"),
            std::string::npos);
}

TEST(json_check, text_that_is_not_json_says_why) {
  for (const char* text : {"", "{", "[1,]", "{\"a\":1} x", "1e400", "{\"a\"\xff:1}"}) {
    auto c = check_json(text);
    EXPECT_FALSE(c.well_formed) << text;
    EXPECT_FALSE(c.issue) << text;
    EXPECT_FALSE(c.syntax_error.empty()) << text;
    EXPECT_EQ(c.syntax_error.find("[json.exception"), std::string::npos) << c.syntax_error;
  }
}

TEST(json_check, decimal_values_compare_by_value_not_text) {
  EXPECT_TRUE(same_decimal_value("1.50", "1.5"));
  EXPECT_TRUE(same_decimal_value("150e-2", "1.5"));
  EXPECT_TRUE(same_decimal_value("0.000", "-0.0"));
  EXPECT_TRUE(same_decimal_value("1e22", "1e+22"));
  EXPECT_FALSE(same_decimal_value("1.5", "-1.5"));
  EXPECT_FALSE(same_decimal_value("1e400", "1e+40"));
  EXPECT_FALSE(same_decimal_value("18446744073709551616", "1.8446744073709552e+19"));
}

TEST(json_check, root_shape_is_reported) {
  EXPECT_TRUE(check_json("[{}]").root_is_array);
  EXPECT_FALSE(check_json("{\"a\":[]}").root_is_array);
}

}  // namespace
}  // namespace derive
