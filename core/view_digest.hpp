#pragma once
// The digest of a view's state (docs/storage.md, "Digest"): the sum modulo
// 2^256 of SHA-256(varint(key length) | key | value) over every state key, so
// that it does not depend on the order in which keys were written and can be
// updated per change: a put adds the new entry's hash and subtracts the old
// one's, a delete subtracts. Two copies of a view at one offset hold the same
// state exactly when (up to SHA-256 collisions) their digests are equal.
//
// Pure values and functions: safe from any thread.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace derive {

struct view_digest {
  // A 256-bit number, little-endian (bytes[0] is the least significant).
  std::array<uint8_t, 32> bytes{};

  // Adds / subtracts the hash of the entry (key, value).
  void add(std::string_view key, std::string_view value);
  void remove(std::string_view key, std::string_view value);
  // Applies the change of `key` from `old_value` to `new_value` (nullopt:
  // absent).
  void change(std::string_view key, const std::optional<std::string>& old_value,
              const std::optional<std::string>& new_value);

  // 64 lowercase hex digits, most significant first.
  std::string hex() const;
  // The stored form: the 32 bytes.
  std::string_view raw() const {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }
  // False unless `raw` is 32 bytes.
  bool assign_raw(std::string_view raw);

  friend bool operator==(const view_digest& a, const view_digest& b) { return a.bytes == b.bytes; }
  friend bool operator!=(const view_digest& a, const view_digest& b) { return !(a == b); }
};

}  // namespace derive
