#pragma once
// The meta records of one view store (docs/storage.md, "Meta"): the view
// format, its offset, the changelog's low-water mark, the failure record and
// the retention last committed with, in the store's `meta` database; all
// integers fixed64.
//
// Transactions belong to the caller (the view store): every call works inside
// the one given; writes need a write transaction. Functions return LMDB codes;
// MDB_CORRUPTED means a stored record does not decode (see decode_status).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct MDB_txn;

namespace derive {

// Durable status of a view (so that a failure survives restarts).
struct view_failure {
  uint64_t offset = 0;  // the event that failed
  std::string error;
};

// The layout of a view's databases; stored in meta/format.
inline constexpr uint64_t view_format = 1;

// Names of the fixed64 records.
inline constexpr std::string_view meta_format = "format";
inline constexpr std::string_view meta_offset = "offset";
inline constexpr std::string_view meta_low_water = "low_water";
inline constexpr std::string_view meta_retention = "retention";
// The offset up to which the store was rebuilt after an erasure (reset).
inline constexpr std::string_view meta_resume_floor = "resume_floor";
// The changelog's size: the bytes of every `changes` key and value it holds.
inline constexpr std::string_view meta_changelog_bytes = "changelog_bytes";
// The state's digest (core/view_digest.hpp): its 32 raw bytes, not fixed64.
inline constexpr std::string_view meta_digest = "digest";

// Age marks, for pruning the changelog by age: the record "age/" + 8-byte
// big-endian milliseconds since the Unix epoch holds (fixed64) the view's
// offset committed at that time, so every changelog entry up to it was
// written at or before it.
inline constexpr std::string_view meta_age_prefix = "age/";
struct age_mark {
  int64_t ms = 0;
  uint64_t offset = 0;
};
// Every mark, ascending by time.
int read_age_marks(MDB_txn* txn, unsigned meta_dbi, std::vector<age_mark>& out);
int put_age_mark(MDB_txn* txn, unsigned meta_dbi, const age_mark& mark);
int delete_age_mark(MDB_txn* txn, unsigned meta_dbi, int64_t ms);

// Everything meta holds, as read when a store opens.
struct view_meta {
  std::optional<uint64_t> format;  // nullopt: never committed
  uint64_t offset = 0;
  std::optional<uint64_t> retention;
  std::optional<uint64_t> changelog_bytes;  // nullopt: written before the record existed
  std::optional<view_failure> failure;
  std::optional<std::string> digest;  // raw; nullopt: written before the record existed
};

int read_view_meta(MDB_txn* txn, unsigned meta_dbi, view_meta& out);

// The digest record: 32 raw bytes (nullopt when absent).
int get_view_digest(MDB_txn* txn, unsigned meta_dbi, std::optional<std::string>& out);
int put_view_digest(MDB_txn* txn, unsigned meta_dbi, std::string_view raw);

// The failure record: fixed64 offset, then the error text.
int get_view_failure(MDB_txn* txn, unsigned meta_dbi, std::optional<view_failure>& out);
// Writes `failure`, or deletes the record when nullopt.
int put_view_failure(MDB_txn* txn, unsigned meta_dbi, const std::optional<view_failure>& failure);

}  // namespace derive
