#pragma once
// A journal: a preallocated file of checksummed records after a durable
// checkpoint, for a store whose own commits are not flushed (docs/storage.md,
// "Next: a journal ahead of the log's LMDB"). A record is durable once
// sync() returned after it; recovery reads the newest checkpoint and the
// records written after it, up to the first that is torn or missing.
//
// Layout (all integers little-endian):
//   [0, 16 KiB)      checkpoint slot 0
//   [16 KiB, 32 KiB) checkpoint slot 1
//   [32 KiB, ...)    records, one after the other from the record area's start
// A slot: crc32c (of what follows, up to the payload's end) | magic "DJC1" |
// generation (u64) | first record's sequence number (u64) | payload length
// (u32) | payload. A checkpoint goes into the slot that does not hold the
// newest one, with the next generation, so a torn slot write leaves the
// previous checkpoint whole.
// A record: crc32c (of what follows, up to the payload's end) | payload
// length (u32) | sequence number (u64) | payload. Records after a checkpoint
// start at the record area's start with the checkpoint's first sequence
// number and go up by one: a record left from before (a higher file
// position, an older sequence number) or torn (a bad checksum) ends the
// records.
//
// Thread-safety: one thread at a time (the store's single writer).
// Errors: io_error (a failed flush makes the journal sticky-failed: what
// was written since the last successful sync may or may not be durable),
// storage_full (no room for a record: checkpoint first), corruption (a
// file that is not a journal).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <derive/status.hpp>

namespace derive {

class journal {
 public:
  static constexpr uint64_t slot_bytes = 16 << 10;
  static constexpr uint64_t records_begin = 2 * slot_bytes;
  static constexpr uint64_t record_header_bytes = 16;
  static constexpr uint64_t slot_header_bytes = 28;
  // The largest checkpoint payload a slot holds.
  static constexpr uint64_t max_checkpoint_bytes = slot_bytes - slot_header_bytes;

  // What a journal holds: its newest whole checkpoint (none in a new journal)
  // and the records written after it, in order.
  struct contents {
    std::optional<std::string> checkpoint;
    uint64_t generation = 0;  // the checkpoint's; 0: none
    std::vector<std::string> records;
  };

  // Opens the journal at `path`, creating it with `capacity` bytes (at least
  // records_begin + one record header) of zeros, flushed, when it does not
  // exist. Appends go after the last record read(). The journal is locked
  // (flock) until closed: a second open fails with unavailable.
  static result<std::unique_ptr<journal>> open(const std::string& path, uint64_t capacity);
  ~journal();
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  // The newest checkpoint and the records after it, read from the file.
  result<contents> read() const;

  // Writes `payload` as the next record (not flushed). Errors: storage_full
  // (nothing written: the record area has no room for it), io_error.
  status append(std::string_view payload);

  // Makes every record appended so far durable (one fdatasync).
  status sync();

  // Durably writes a checkpoint (`payload`, at most max_checkpoint_bytes):
  // the records before it are no longer read, and the next record goes to the
  // record area's start. One fdatasync.
  status checkpoint(std::string_view payload);

  // Durably writes a checkpoint (`payload`) that keeps the records after the
  // current one readable: for a store whose file was replaced by a whole copy
  // of the same state (a compaction) before the records were redone onto it.
  // REQUIRES: a checkpoint exists. One fdatasync.
  status rebase(std::string_view payload);

  // Overwrites the record area after the last record with zeros and flushes:
  // after a checkpoint, no earlier record keeps its bytes in the file.
  status scrub();

  // Bytes of records written since the checkpoint, headers included.
  uint64_t used() const { return tail_ - records_begin; }
  uint64_t capacity() const { return capacity_; }

 private:
  journal(int fd, std::string path, uint64_t capacity);
  status load();  // finds the tail and the next sequence number
  status fail(const std::string& what, int error);
  // Writes a slot: the next generation, records from `first_seq` on.
  status write_slot(std::string_view payload, uint64_t first_seq);

  int fd_;
  std::string path_;
  uint64_t capacity_;
  uint64_t generation_ = 0;  // of the newest checkpoint
  int newest_slot_ = -1;     // -1: none
  uint64_t tail_ = records_begin;
  uint64_t next_seq_ = 1;
  uint64_t first_seq_ = 1;        // of the newest checkpoint
  bool unsynced_ = false;         // records written since the last flush
  std::optional<status> failed_;  // sticky after a failed flush
  std::string buffer_;            // one record's bytes, reused
};

}  // namespace derive
