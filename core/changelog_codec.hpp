#pragma once
// The bytes of one changelog entry (docs/storage.md, "Changelog entry"): the
// `changes` value at a view offset:
//   varint count, then per change: bytes key, one tag byte (0 deleted, 1 put)
//   and, for a put, bytes value.
// Pure functions, safe from any thread.

#include <string>
#include <string_view>
#include <vector>

#include <derive/changelog.hpp>

namespace derive {

std::string encode_changelog_entry(const std::vector<key_change>& changes);
// The same, appended to `out`.
void encode_changelog_entry(const std::vector<key_change>& changes, std::string& out);

// False when `in` does not decode (truncated, unknown tag, trailing bytes);
// `changes` is then unspecified.
bool decode_changelog_entry(std::string_view in, std::vector<key_change>& changes);

}  // namespace derive
