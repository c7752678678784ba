#pragma once
// Building JSON text by hand, for responses whose parts are already JSON
// (view values are stored as compact JSON text and are copied verbatim).

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

// Appends the decimal digits of `v`.
void append_uint(std::string& out, uint64_t v);

}  // namespace derive
