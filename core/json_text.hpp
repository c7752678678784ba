#pragma once
// Building JSON text by hand, for responses whose parts are already JSON
// (view values are stored as compact JSON text and are copied verbatim).

#include <cstddef>
#include <cstdint>
#include <optional>
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

// Appends one change item of a subscription (protocol.md, "changes"):
// {"offset":O,"key":"…","value":…}. `key` is encoded as append_json_string
// does (as in snapshots and reads); `value` is compact JSON copied verbatim,
// nullopt (deleted) is null. The one encoder of this form.
void append_change_item(std::string& out, uint64_t offset, std::string_view key,
                        const std::optional<std::string>& value);

}  // namespace derive
