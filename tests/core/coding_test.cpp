// Specification of core/coding: varints, length-prefixed bytes and fixed-width
// integers round-trip, and decoding refuses truncated and overlong input.

#include "core/coding.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace derive {
namespace {

const std::vector<uint64_t> samples = {0,          1,          127,        128,
                                       255,        300,        16383,      16384,
                                       1ull << 32, 1ull << 63, std::numeric_limits<uint64_t>::max()};

TEST(coding_test, varints_round_trip) {
  std::string bytes;
  for (uint64_t v : samples) put_varint64(bytes, v);
  std::string_view in = bytes;
  for (uint64_t v : samples) {
    uint64_t got = 0;
    ASSERT_TRUE(get_varint64(in, got));
    EXPECT_EQ(got, v);
  }
  EXPECT_TRUE(in.empty());
}

TEST(coding_test, varint_length_matches_the_encoding) {
  for (uint64_t v : samples) {
    std::string bytes;
    put_varint64(bytes, v);
    EXPECT_EQ(bytes.size(), varint_length(v)) << v;
    char raw[max_varint64_bytes];
    EXPECT_EQ(std::string(raw, encode_varint64(raw, v)), bytes) << v;
  }
  EXPECT_EQ(varint_length(std::numeric_limits<uint64_t>::max()), max_varint64_bytes);
}

TEST(coding_test, varint_is_leb128) {
  std::string bytes;
  put_varint64(bytes, 300);
  EXPECT_EQ(bytes, std::string("\xac\x02"));
}

TEST(coding_test, truncated_varint_is_refused) {
  std::string bytes;
  put_varint64(bytes, 1ull << 40);
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string_view in(bytes.data(), n);
    uint64_t v = 0;
    EXPECT_FALSE(get_varint64(in, v)) << n;
  }
}

TEST(coding_test, overlong_varint_is_refused) {
  std::string bytes(max_varint64_bytes, '\x80');  // never ends within 10 bytes
  bytes.push_back('\x01');
  std::string_view in = bytes;
  uint64_t v = 0;
  EXPECT_FALSE(get_varint64(in, v));
}

TEST(coding_test, length_prefixed_bytes_round_trip) {
  std::string bytes;
  const std::vector<std::string> values = {"", "a", std::string(200, 'x'), std::string("\0\xff", 2)};
  for (const auto& v : values) put_length_prefixed(bytes, v);
  std::string_view in = bytes;
  for (const auto& v : values) {
    std::string_view got;
    ASSERT_TRUE(get_length_prefixed(in, got));
    EXPECT_EQ(got, v);
  }
  EXPECT_TRUE(in.empty());
}

TEST(coding_test, truncated_length_prefixed_bytes_are_refused) {
  std::string bytes;
  put_length_prefixed(bytes, std::string(200, 'x'));
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string_view in(bytes.data(), n), got;
    EXPECT_FALSE(get_length_prefixed(in, got)) << n;
  }
}

TEST(coding_test, fixed64_is_little_endian_and_round_trips) {
  std::string bytes;
  put_fixed64(bytes, 0x0102030405060708ull);
  EXPECT_EQ(bytes, std::string("\x08\x07\x06\x05\x04\x03\x02\x01", 8));
  for (uint64_t v : samples) put_fixed64(bytes, v);
  std::string_view in = bytes;
  uint64_t got = 0;
  ASSERT_TRUE(get_fixed64(in, got));
  for (uint64_t v : samples) {
    ASSERT_TRUE(get_fixed64(in, got));
    EXPECT_EQ(got, v);
  }
  EXPECT_TRUE(in.empty());
}

TEST(coding_test, truncated_fixed64_is_refused) {
  std::string bytes;
  put_fixed64(bytes, 42);
  std::string_view in(bytes.data(), 7);
  uint64_t v = 0;
  EXPECT_FALSE(get_fixed64(in, v));
}

TEST(coding_test, fixed32_and_big64_round_trip) {
  char raw[8];
  encode_fixed32(raw, 0xdeadbeef);
  EXPECT_EQ(std::string(raw, 4), std::string("\xef\xbe\xad\xde", 4));
  EXPECT_EQ(decode_fixed32(raw), 0xdeadbeefu);
  encode_big64(raw, 0x0102030405060708ull);
  EXPECT_EQ(std::string(raw, 8), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  for (uint64_t v : samples) {
    encode_big64(raw, v);
    EXPECT_EQ(decode_big64(raw), v);
  }
}

TEST(coding_test, zigzag_round_trips_and_keeps_small_magnitudes_small) {
  for (int64_t v : {int64_t{0}, int64_t{-1}, int64_t{1}, int64_t{-64}, int64_t{1'700'000'000'000},
                    std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()})
    EXPECT_EQ(zigzag_decode(zigzag_encode(v)), v) << v;
  EXPECT_EQ(zigzag_encode(-1), 1u);
  EXPECT_EQ(zigzag_encode(1), 2u);
}

}  // namespace
}  // namespace derive
