#include "core/view_digest.hpp"

#include <openssl/sha.h>

#include <cstring>

#include "core/coding.hpp"

namespace derive {
namespace {

using digest_bytes = std::array<uint8_t, 32>;

// SHA-256 of varint(key length) | key | value, read as a little-endian number.
digest_bytes entry_hash(std::string_view key, std::string_view value) {
  thread_local std::string entry;  // reused: one allocation per thread
  entry.clear();
  put_length_prefixed(entry, key);
  entry.append(value);
  digest_bytes out;
  SHA256(reinterpret_cast<const unsigned char*>(entry.data()), entry.size(), out.data());
  return out;
}

void add_to(digest_bytes& sum, const digest_bytes& x) {
  unsigned carry = 0;
  for (size_t i = 0; i < sum.size(); ++i) {
    unsigned s = unsigned{sum[i]} + x[i] + carry;
    sum[i] = static_cast<uint8_t>(s);
    carry = s >> 8;
  }
}

void subtract_from(digest_bytes& sum, const digest_bytes& x) {
  int borrow = 0;
  for (size_t i = 0; i < sum.size(); ++i) {
    int d = int{sum[i]} - x[i] - borrow;
    borrow = d < 0;
    sum[i] = static_cast<uint8_t>(d + (borrow ? 256 : 0));
  }
}

}  // namespace

void view_digest::add(std::string_view key, std::string_view value) {
  add_to(bytes, entry_hash(key, value));
}

void view_digest::remove(std::string_view key, std::string_view value) {
  subtract_from(bytes, entry_hash(key, value));
}

void view_digest::change(std::string_view key, const std::optional<std::string>& old_value,
                         const std::optional<std::string>& new_value) {
  if (old_value == new_value) return;
  if (old_value) remove(key, *old_value);
  if (new_value) add(key, *new_value);
}

std::string view_digest::hex() const {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (size_t i = bytes.size(); i-- > 0;) {
    out.push_back(digits[bytes[i] >> 4]);
    out.push_back(digits[bytes[i] & 15]);
  }
  return out;
}

bool view_digest::assign_raw(std::string_view raw) {
  if (raw.size() != bytes.size()) return false;
  std::memcpy(bytes.data(), raw.data(), raw.size());
  return true;
}

}  // namespace derive
