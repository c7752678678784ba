#pragma once
// The log's idempotency keys (docs/storage.md, "idem", "idem_by_time"): for
// each key the outcome of the request that first used it, its ts and the
// request's fingerprint, plus a time index that prunes the oldest keys.
// Keys are written in the append transaction of their events, so a key
// exists iff its events do.
//
// Transactions belong to the caller (the event log): every call works inside
// the transaction it is given. LMDB errors go through environment::check (a
// panic fails the environment). Thread-safety: put and prune by the log's
// single writer; find from any thread, in that thread's transaction.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <derive/append.hpp>
#include <derive/options.hpp>
#include <derive/status.hpp>

#include "core/environment.hpp"

struct MDB_txn;

namespace derive {

// What `idem` stores for a key. `fingerprint` views the transaction's memory:
// valid until the transaction ends or writes.
struct stored_outcome {
  append_outcome outcome;
  int64_t ts = 0;
  std::string_view fingerprint;
};

class idempotency_store {
 public:
  explicit idempotency_store(environment& env) : env_(env) {}

  // Opens the two databases. REQUIRES: before any other call.
  status open();

  // The stored outcome of `key`; nullopt when unknown. Errors: corruption
  // naming the key, LMDB's.
  result<std::optional<stored_outcome>> find(MDB_txn* txn, const std::string& key) const;

  // Stores `key` -> (outcome, ts, fingerprint) and its time index entry.
  // REQUIRES: a write transaction; the single writer.
  status put(MDB_txn* txn, const std::string& key, const append_outcome& outcome, int64_t ts,
             std::string_view fingerprint);

  // Removes, oldest first, up to options.idempotency_prune_per_commit keys
  // older than now - options.idempotency_retention while more than
  // options.idempotency_min_keys remain; sets `dirty` when it wrote.
  // REQUIRES: a write transaction; the single writer.
  status prune(MDB_txn* txn, int64_t now, const log_options& options, bool& dirty);

  // Deletes every key (and its time index entry) whose events include one of
  // `offsets` (ascending): an erased event leaves no key, outcome or
  // fingerprint of its request behind. O(keys stored). Returns how many.
  // REQUIRES: a write transaction; the single writer.
  result<size_t> erase_covering(MDB_txn* txn, const std::vector<uint64_t>& offsets);

 private:
  environment& env_;
  unsigned idem_ = 0, by_time_ = 0;
};

}  // namespace derive
