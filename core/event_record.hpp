#pragma once
// The log's record codec (docs/storage.md, "log"): the bytes stored under an
// event's offset, format 1:
//   format u8 | varint zigzag(ts) | bytes type | bytes key | bytes subject |
//   bytes data | fixed32 CRC-32C (Castagnoli) of every byte before it.
// A redacted record (forget, retention), format 2, keeps only the offset (its
// key), ts and type:
//   format u8 = 2 | varint zigzag(ts) | bytes type | fixed32 CRC-32C.
// Decoding checks the checksum, the format byte, every length and that
// nothing trails; any failure is corruption naming the offset.
//
// Pure functions, safe from any thread. A record_batch_encoder holds a buffer
// and belongs to one thread (the log's writer).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <derive/event.hpp>
#include <derive/status.hpp>

namespace derive {

// Appends the record of `e` stamped `ts` to `out` (tests, benchmarks).
void encode_event_record(const event_input& e, int64_t ts, std::string& out);
// The event stored at `offset` as `record`. Errors: corruption.
result<event> decode_event_record(uint64_t offset, std::string_view record);
// The same into `out` (its strings' storage reused); on an error `out` is
// unspecified.
status decode_event_record(uint64_t offset, std::string_view record, event& out);

// Appends the redacted record of an event of `type` stamped `ts` to `out`.
void encode_redacted_record(const std::string& type, int64_t ts, std::string& out);

// The append path's encoder: records of up to max_records events at a time,
// into one buffer reused across calls, their checksums computed as
// interleaved chains (crc32c_many).
class record_batch_encoder {
 public:
  static constexpr size_t max_records = 16;

  // Encodes events[0, n) stamped `ts`; records[i] is the record of events[i],
  // valid until the next call. REQUIRES: n <= max_records.
  void encode(const event_input* events, size_t n, int64_t ts, std::string_view* records);

 private:
  std::vector<char> buffer_;
};

}  // namespace derive
