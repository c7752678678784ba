#include "core/event_record.hpp"

#include <array>
#include <cstring>

#include "core/coding.hpp"
#include "core/hash.hpp"

namespace derive {
namespace {

constexpr uint8_t record_format = 1;
constexpr uint8_t redacted_format = 2;
constexpr size_t checksum_bytes = 4;

uint32_t checksum(std::string_view bytes) { return detail::crc32c(bytes); }

// Copies n bytes, sizeof(Word) <= n <= 2 * sizeof(Word), as two overlapping
// fixed-size moves.
template <typename Word>
void copy_two_words(char* dst, const char* src, size_t n) {
  Word a, b;
  std::memcpy(&a, src, sizeof a);
  std::memcpy(&b, src + n - sizeof b, sizeof b);
  std::memcpy(dst, &a, sizeof a);
  std::memcpy(dst + n - sizeof b, &b, sizeof b);
}

// memcpy, with short copies (types, keys) inlined instead of a library call.
void copy_bytes(char* dst, const char* src, size_t n) {
  if (n > 16) {
    std::memcpy(dst, src, n);
  } else if (n >= 8) {
    copy_two_words<uint64_t>(dst, src, n);
  } else if (n >= 4) {
    copy_two_words<uint32_t>(dst, src, n);
  } else {
    for (size_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

char* write_bytes(char* p, const std::string& s) {
  p = encode_varint64(p, s.size());
  copy_bytes(p, s.data(), s.size());
  return p + s.size();
}

// The record's first bytes, format and ts, the same for every event of an
// append: encoded once.
struct record_prefix {
  char bytes[1 + max_varint64_bytes] = {};
  size_t size = 0;

  explicit record_prefix(int64_t ts) {
    bytes[0] = static_cast<char>(record_format);
    size = static_cast<size_t>(encode_varint64(bytes + 1, zigzag_encode(ts)) - bytes);
  }
};

size_t field_size(const std::string& s) {
  return s.size() < 0x80 ? s.size() + 1 : s.size() + varint_length(s.size());
}

size_t record_size(const event_input& e, const record_prefix& prefix) {
  return prefix.size + field_size(e.type) + field_size(e.key) + field_size(e.subject) +
         field_size(e.data) + checksum_bytes;
}

// Writes the record of `e`, all but its checksum (see put_checksum), into the
// record_size(e, prefix) bytes at `out`.
// REQUIRES: `out` has room for record_padding more bytes beyond the record
// (the prefix is copied whole, a fixed-size copy; the fields overwrite the
// excess).
constexpr size_t record_padding = sizeof(record_prefix::bytes);
void write_record_body(const event_input& e, const record_prefix& prefix, char* out) {
  std::memcpy(out, prefix.bytes, sizeof prefix.bytes);
  char* p = out + prefix.size;
  p = write_bytes(p, e.type);
  p = write_bytes(p, e.key);
  p = write_bytes(p, e.subject);
  write_bytes(p, e.data);
}

void put_checksum(char* record, size_t size, uint32_t sum) {
  encode_fixed32(record + size - checksum_bytes, sum);
}

bool get_string(std::string_view& in, std::string& out) {
  std::string_view bytes;
  if (!get_length_prefixed(in, bytes)) return false;
  out.assign(bytes);
  return true;
}

}  // namespace

void encode_event_record(const event_input& e, int64_t ts, std::string& out) {
  record_prefix prefix{ts};
  size_t start = out.size(), size = record_size(e, prefix);
  out.resize(start + size + record_padding);
  write_record_body(e, prefix, &out[start]);
  out.resize(start + size);
  put_checksum(&out[start], size, checksum(std::string_view(&out[start], size - checksum_bytes)));
}

void encode_redacted_record(const std::string& type, int64_t ts, std::string& out) {
  const size_t start = out.size();
  out.push_back(static_cast<char>(redacted_format));
  char buf[max_varint64_bytes];
  out.append(buf, static_cast<size_t>(encode_varint64(buf, zigzag_encode(ts)) - buf));
  out.append(buf, static_cast<size_t>(encode_varint64(buf, type.size()) - buf));
  out.append(type);
  char sum[checksum_bytes];
  encode_fixed32(sum, checksum(std::string_view(&out[start], out.size() - start)));
  out.append(sum, checksum_bytes);
}

result<event> decode_event_record(uint64_t offset, std::string_view record) {
  event ev;
  if (auto st = decode_event_record(offset, record, ev); !st) return st;
  return ev;
}

status decode_event_record(uint64_t offset, std::string_view record, event& ev) {
  auto corrupt = [&](const char* what) {
    return status{errc::corruption, "the log record at offset " + std::to_string(offset) +
                                        " is corrupt (" + what + ")"};
  };
  if (record.size() < 1 + checksum_bytes) return corrupt("too short");
  auto body = record.substr(0, record.size() - checksum_bytes);
  if (decode_fixed32(record.data() + body.size()) != checksum(body))
    return corrupt("checksum mismatch");
  const auto format = static_cast<uint8_t>(body.front());
  if (format != record_format && format != redacted_format) return corrupt("unknown format");
  body.remove_prefix(1);
  ev.offset = offset;
  ev.redacted = format == redacted_format;
  uint64_t ts = 0;
  if (!get_varint64(body, ts) || !get_string(body, ev.type)) return corrupt("truncated");
  if (ev.redacted) {
    ev.key.clear();
    ev.subject.clear();
    ev.data.assign("null");
  } else if (!get_string(body, ev.key) || !get_string(body, ev.subject) ||
             !get_string(body, ev.data)) {
    return corrupt("truncated");
  }
  if (!body.empty()) return corrupt("trailing bytes");
  ev.ts = zigzag_decode(ts);
  return status::ok();
}

void record_batch_encoder::encode(const event_input* events, size_t n, int64_t ts,
                                  std::string_view* records) {
  const record_prefix prefix{ts};
  std::array<size_t, max_records> sizes;
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) total += sizes[i] = record_size(events[i], prefix);
  if (buffer_.size() < total + record_padding) buffer_.resize(total + record_padding);
  // records[i] is first the body (all but the checksum), then the record.
  char* p = buffer_.data();
  for (size_t i = 0; i < n; ++i) {
    write_record_body(events[i], prefix, p);
    records[i] = std::string_view(p, sizes[i] - checksum_bytes);
    p += sizes[i];
  }
  std::array<uint32_t, max_records> sums;
  detail::crc32c_many(records, sums.data(), n);
  for (size_t i = 0; i < n; ++i) {
    char* record = const_cast<char*>(records[i].data());  // points into buffer_
    put_checksum(record, sizes[i], sums[i]);
    records[i] = std::string_view(record, sizes[i]);
  }
}

}  // namespace derive
