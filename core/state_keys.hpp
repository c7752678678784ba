#pragma once
// View keys in LMDB (docs/storage.md, "State keys"): how the `state` and
// `private` databases of a view store hold keys of any length, empty or
// longer than LMDB's key limit, in view-key byte order.
//
// Every stored key starts with the tag 'k'. With D = maxkeysize - 2, a view
// key of at most D bytes is stored as 'k' + key; a longer one lives in a
// bucket, the LMDB key 'k' + key[0, D) + '\xff' (maxkeysize bytes, a length
// no direct key has), whose value holds every long key with that beginning:
// varint count, then per entry, ascending, bytes rest-of-key, bytes value.
//
// Transactions belong to the caller: every call works inside the one given
// (state_apply needs a write transaction). Functions return LMDB codes;
// MDB_CORRUPTED means stored bytes do not decode (see decode_status).
// A state_cursor is used by one thread, within its transaction.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <derive/changelog.hpp>

#include "core/lmdb_util.hpp"

namespace derive {

// The value of `key` (nullopt when absent).
int state_get(MDB_txn* txn, MDB_dbi dbi, std::string_view key, std::optional<std::string>& out);

// Puts (value set) or deletes (nullopt) `change.key`; deleting a missing key
// is a no-op.
int state_apply(MDB_txn* txn, MDB_dbi dbi, const key_change& change);

// Writes changes through one cursor. Given in ascending key order,
// consecutive keys on one leaf page cost no descent from the root (LMDB
// searches the cursor's page first), and a put of an existing key finds it
// once: the replace is done in place at the cursor. Any order is correct.
// Keys longer than the direct limit go through their bucket (state_apply).
// REQUIRES: destroyed before its transaction commits or aborts (LMDB frees a
// write transaction's cursors at its end; the writer closes its own).
class state_writer {
 public:
  int open(MDB_txn* txn, MDB_dbi dbi);
  // state_apply that also gives the value replaced: `had_old` tells whether
  // the key existed, `old` then holds its value (a buffer reused across
  // calls). A put of a new key costs one descent, not a read and a write.
  int replace(const key_change& change, bool& had_old, std::string& old);
  // state_apply through the cursor.
  int apply(const key_change& change);

 private:
  MDB_txn* txn_ = nullptr;
  MDB_dbi dbi_ = 0;
  cursor_guard cursor_;
  size_t direct_ = 0;
  std::string skey_;  // reused
  std::string ignored_old_;  // apply()'s
};

// Counts the view keys that start with `prefix`, walking LMDB keys only: a
// direct key is counted from its LMDB key, a bucket whose beginning starts
// with `prefix` by its entry count (the first varint of its value); only a
// prefix longer than the direct limit decodes a bucket.
int state_count(MDB_txn* txn, MDB_dbi dbi, std::string_view prefix, uint64_t& out);

// Iterates view keys in byte order, across direct keys and buckets.
class state_cursor {
 public:
  int open(MDB_txn* txn, MDB_dbi dbi);
  // Positions at the first key >= `key`.
  int seek(std::string_view key);
  int next();
  bool valid() const { return valid_; }
  const std::string& key() const { return key_; }
  // Valid until the cursor moves.
  std::string_view value() const { return value_; }

  // A bucket's entries: (rest of the key, value), ascending by rest.
  using bucket = std::vector<std::pair<std::string, std::string>>;

 private:
  int load(int rc);
  void set_bucket_entry();

  cursor_guard cursor_;
  size_t direct_ = 0;
  bool valid_ = false;
  bool in_bucket_ = false;
  bucket bucket_;
  std::string bucket_head_;
  size_t index_ = 0;
  std::string key_;
  std::string_view value_;
};

}  // namespace derive
