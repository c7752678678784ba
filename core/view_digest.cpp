#include "core/view_digest.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstring>
#include <memory>

#include "core/coding.hpp"

namespace derive {
namespace {

using digest_bytes = std::array<uint8_t, 32>;

// SHA-256 of varint(key length) | key | value, read as a little-endian number.
// Through one fetched SHA-256 and a context per thread: OpenSSL 3's one-shot
// SHA256() looks the algorithm up (locks, reference counts) on every call,
// several times the cost of hashing a short entry.
digest_bytes entry_hash(std::string_view key, std::string_view value) {
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local const std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx{EVP_MD_CTX_new(),
                                                                           EVP_MD_CTX_free};
  char length[max_varint64_bytes];
  const size_t length_size = static_cast<size_t>(encode_varint64(length, key.size()) - length);
  digest_bytes out;
  unsigned int size = 0;
  if (sha256 && ctx && EVP_DigestInit_ex(ctx.get(), sha256, nullptr) == 1 &&
      EVP_DigestUpdate(ctx.get(), length, length_size) == 1 &&
      EVP_DigestUpdate(ctx.get(), key.data(), key.size()) == 1 &&
      EVP_DigestUpdate(ctx.get(), value.data(), value.size()) == 1 &&
      EVP_DigestFinal_ex(ctx.get(), out.data(), &size) == 1 && size == out.size())
    return out;
  // Unreachable unless OpenSSL fails to allocate: the one-shot form.
  std::string entry(length, length_size);
  entry.append(key).append(value);
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
