#pragma once
// Building JSON text by hand, for responses whose parts are already JSON
// (view values are stored as compact JSON text and are copied verbatim).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace derive {

// True when `s` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// Appends `s` as a JSON string literal (quotes included). Bytes that are not
// valid UTF-8 become U+FFFD, so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view s);

// `s` as a JSON string literal.
std::string json_string(std::string_view s);

// True when `text` nests arrays and objects deeper than `limit` (strings are
// skipped). A cheap scan run before parsing untrusted JSON, whose parser
// recurses once per level.
bool json_deeper_than(std::string_view text, size_t limit);

// Appends the decimal digits of `v`.
void append_uint(std::string& out, uint64_t v);

}  // namespace derive
