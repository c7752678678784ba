#pragma once
// Checking untrusted JSON text for what a parsed value would silently change
// (docs/protocol.md, "Numbers and member names"): a member name that appears
// twice in one object (the parsed value keeps only the last), an integer
// beyond 64 bits, and a number whose stored form would denote another decimal
// value than the one sent. One SAX pass over the text, no value is built;
// linear in the text (member names are sorted per object).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace derive {

// The first thing a parse would change, and where it is.
struct json_issue {
  // The JSON path below the root: "" (the root), ".data.amount", "[3].data",
  // ".a[\"odd key\"]".
  std::string path;
  // What is wrong, to follow the path in a sentence: "appears twice in its
  // object (...)".
  std::string what;

  // "<root><path> <what>", e.g. "events[0].data.amount is an integer ...".
  // An empty root drops the path's leading '.'.
  std::string describe(std::string_view root) const;
};

struct json_check {
  bool well_formed = false;
  std::string syntax_error;  // when not well-formed: the parser's message
  bool root_is_array = false;
  std::optional<json_issue> issue;  // when well-formed: the first issue, if any
};

// Checks `text` (any depth: callers refuse deep nesting first, see
// json_deeper_than). Numbers are kept exactly when they are integers within
// int64/uint64, or when the shortest text of the double they parse to (what
// the server stores) denotes the same decimal value as the literal sent:
// "0.1", "1.50", "1e3", "-0.0" pass; "1.00000000000000001", "1e-400",
// "18446744073709551616" do not.
json_check check_json(std::string_view text);

// True when the double text `stored` denotes the same decimal value as the
// JSON number literal `sent` (both JSON number grammar).
bool same_decimal_value(std::string_view sent, std::string_view stored);

}  // namespace derive
