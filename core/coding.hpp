#pragma once
// Byte encodings shared by core's stored formats (docs/storage.md,
// "Conventions"), after LevelDB's util/coding:
//   varint   LEB128: 7 bits per byte, low bits first, high bit set on every
//            byte but the last; at most 10 bytes for a uint64.
//   bytes    a varint length followed by that many bytes (length-prefixed).
//   fixed64  8 bytes little-endian; fixed32 likewise with 4 bytes.
//   big64    8 bytes big-endian, for keys whose byte order must be numeric.
//
// put_* append to a std::string. get_* consume from the front of a
// string_view and return false on truncated or overlong input (`in` is then
// unspecified). encode_* / decode_* work on raw memory the caller sized.
// Pure functions of their arguments: safe from any thread.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace derive {

// The most bytes a uint64 varint takes.
inline constexpr size_t max_varint64_bytes = 10;

// ---- raw memory (inline: the log's append path encodes with these) --------

inline size_t varint_length(uint64_t v) {
  size_t n = 1;
  for (; v >= 0x80; v >>= 7) ++n;
  return n;
}

// Writes the varint of `v` at `dst` and returns the byte after it.
// REQUIRES: room for varint_length(v) bytes.
inline char* encode_varint64(char* dst, uint64_t v) {
  for (; v >= 0x80; v >>= 7) *dst++ = static_cast<char>(static_cast<uint8_t>(v) | 0x80);
  *dst++ = static_cast<char>(v);
  return dst;
}

// Little-endian fixed-width integers (T: uint32_t, uint64_t).
template <typename T>
inline void encode_fixed(char* dst, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) dst[i] = static_cast<char>(v >> (8 * i));
}
template <typename T>
inline T decode_fixed(const char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= T{static_cast<uint8_t>(p[i])} << (8 * i);
  return v;
}
inline void encode_fixed32(char* dst, uint32_t v) { encode_fixed(dst, v); }
inline uint32_t decode_fixed32(const char* p) { return decode_fixed<uint32_t>(p); }
inline void encode_fixed64(char* dst, uint64_t v) { encode_fixed(dst, v); }
inline uint64_t decode_fixed64(const char* p) { return decode_fixed<uint64_t>(p); }

inline void encode_big64(char* dst, uint64_t v) {
  for (int i = 0; i < 8; ++i) dst[i] = static_cast<char>(v >> (56 - 8 * i));
}

inline uint64_t decode_big64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Zigzag maps signed to unsigned so that small magnitudes make short varints.
inline uint64_t zigzag_encode(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t zigzag_decode(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// ---- strings -----------------------------------------------------------------

void put_varint64(std::string& out, uint64_t v);
void put_length_prefixed(std::string& out, std::string_view bytes);
void put_fixed64(std::string& out, uint64_t v);

// The decoders are inline: the log decodes every record it reads with them.

// False when `in` ends inside the varint or it runs past max_varint64_bytes.
inline bool get_varint64(std::string_view& in, uint64_t& v) {
  v = 0;
  for (unsigned shift = 0; shift < 64 && !in.empty(); shift += 7) {
    auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// `bytes` views into the input. False when the length or the bytes are cut.
inline bool get_length_prefixed(std::string_view& in, std::string_view& bytes) {
  uint64_t n = 0;
  if (!get_varint64(in, n) || n > in.size()) return false;
  bytes = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}

// False when fewer than 8 bytes are left.
inline bool get_fixed64(std::string_view& in, uint64_t& v) {
  if (in.size() < 8) return false;
  v = decode_fixed64(in.data());
  in.remove_prefix(8);
  return true;
}

}  // namespace derive
