#pragma once
// Hashes internal to core/ whose output is stored on disk, so they must never
// change (docs/storage.md): a fast non-cryptographic 64-bit hash for append
// fingerprints (core/event.cpp) and CRC-32C for log records (core/log.cpp).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace derive::detail {

// Parameters of one hash function; two sets with different constants give
// two independent 64-bit hashes.
struct hash_params {
  uint64_t seed;
  uint64_t mul;
  unsigned rot;
};

inline constexpr hash_params hash_a{0x9e3779b97f4a7c15ull, 0x87c37b91114253d5ull, 27};
inline constexpr hash_params hash_b{0xc2b2ae3d27d4eb4full, 0x4cf5ad432745937full, 31};

inline uint64_t hash_mix(uint64_t x) {  // splitmix64's finalizer: a bijection
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

inline uint64_t hash_rotl(uint64_t x, unsigned r) { return (x << r) | (x >> (64 - r)); }

// Every step is a bijection of the state for a given input word, so no input
// can erase what came before it.
inline uint64_t hash64(std::string_view bytes, const hash_params& p) {
  const char* s = bytes.data();
  size_t n = bytes.size();
  uint64_t h = p.seed ^ (n * p.mul);
  for (; n >= 8; s += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, s, 8);
    h = hash_rotl(h ^ hash_mix(w), p.rot) * p.mul + 0x52dce729;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, s, n);
    h = hash_rotl(h ^ hash_mix(w ^ (uint64_t{n} << 56)), p.rot) * p.mul + 0x38495ab5;
  }
  return hash_mix(h ^ p.seed);
}

}  // namespace derive::detail

namespace derive::detail {

// CRC-32C (Castagnoli), as in LevelDB and iSCSI: crc32c("123456789") ==
// 0xe3069283. Uses the SSE 4.2 instruction when the CPU has it, a table
// otherwise; both give the same value (it is stored on disk).
struct crc32c_table {
  uint32_t t[256];
  constexpr crc32c_table() : t() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
      t[i] = c;
    }
  }
};
inline constexpr crc32c_table crc32c_sw_table{};

inline uint32_t crc32c_sw(uint32_t crc, const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    crc = crc32c_sw_table.t[(crc ^ static_cast<uint8_t>(p[i])) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) inline uint32_t crc32c_hw(uint32_t crc, const char* p,
                                                             size_t n) {
  uint64_t c = crc;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
  }
  auto c32 = static_cast<uint32_t>(c);
  if (n >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    c32 = __builtin_ia32_crc32si(c32, w);
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    c32 = __builtin_ia32_crc32hi(c32, w);
    p += 2;
    n -= 2;
  }
  if (n > 0) c32 = __builtin_ia32_crc32qi(c32, static_cast<unsigned char>(*p));
  return c32;
}
// Four independent CRCs at once: the instruction's latency is 3 cycles and
// its throughput 1 per cycle, so interleaving four chains is ~3x faster than
// computing them one after the other (short log records).
__attribute__((target("sse4.2"))) inline void crc32c_hw_x4(const std::string_view* in,
                                                            uint32_t* out) {
  size_t common = std::min(std::min(in[0].size(), in[1].size()),
                           std::min(in[2].size(), in[3].size())) & ~size_t{7};
  const char *p0 = in[0].data(), *p1 = in[1].data(), *p2 = in[2].data(), *p3 = in[3].data();
  uint64_t c0 = 0xffffffffu, c1 = c0, c2 = c0, c3 = c0;
  for (size_t i = 0; i < common; i += 8) {
    uint64_t w0, w1, w2, w3;
    std::memcpy(&w0, p0 + i, 8);
    std::memcpy(&w1, p1 + i, 8);
    std::memcpy(&w2, p2 + i, 8);
    std::memcpy(&w3, p3 + i, 8);
    c0 = __builtin_ia32_crc32di(c0, w0);
    c1 = __builtin_ia32_crc32di(c1, w1);
    c2 = __builtin_ia32_crc32di(c2, w2);
    c3 = __builtin_ia32_crc32di(c3, w3);
  }
  const uint64_t c[4] = {c0, c1, c2, c3};
  for (int k = 0; k < 4; ++k)
    out[k] = ~crc32c_hw(static_cast<uint32_t>(c[k]), in[k].data() + common, in[k].size() - common);
}

inline const bool crc32c_has_hw = [] {
  __builtin_cpu_init();  // may run before libgcc's own initializer
  return __builtin_cpu_supports("sse4.2") != 0;
}();
#endif

inline uint32_t crc32c(std::string_view bytes) {
  uint32_t crc = 0xffffffffu;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (crc32c_has_hw) return ~crc32c_hw(crc, bytes.data(), bytes.size());
#endif
  return ~crc32c_sw(crc, bytes.data(), bytes.size());
}

// out[i] = crc32c(in[i]) for i < n.
inline void crc32c_many(const std::string_view* in, uint32_t* out, size_t n) {
  size_t i = 0;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (crc32c_has_hw)
    for (; i + 4 <= n; i += 4) crc32c_hw_x4(in + i, out + i);
#endif
  for (; i < n; ++i) out[i] = crc32c(in[i]);
}

}  // namespace derive::detail
