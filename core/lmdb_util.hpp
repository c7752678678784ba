#pragma once
// The few ways core talks to LMDB: a transaction guard and a cursor guard
// that end what they hold, MDB_val <-> bytes conversions, and the mapping of
// LMDB return codes to status. Internal to core's .cpp files (it includes
// lmdb.h); the environment (core/environment.hpp) builds on it to begin and
// commit transactions and to make a panic sticky.
//
// Ownership: a txn_guard owns its transaction until release(); whoever
// releases it commits it (environment::commit) or hands it on (a snapshot).
// A cursor_guard must be destroyed before its transaction ends.
// Thread-safety: a guard is used by one thread at a time; with MDB_NOTLS a
// read transaction may move between threads, a write transaction may not.

#include <lmdb.h>

#include <cstdint>
#include <cstring>
#include <string_view>
#include <thread>
#include <utility>

#include <derive/status.hpp>

#include "core/env_gate.hpp"

namespace derive {

// Aborts the transaction it holds (if any) when destroyed, then returns the
// gate pass it holds (if any).
class txn_guard {
 public:
  txn_guard() = default;
  ~txn_guard() { abort(); }
  txn_guard(const txn_guard&) = delete;
  txn_guard& operator=(const txn_guard&) = delete;

  // Begins a transaction (`flags`: 0 or MDB_RDONLY, MDB_NOMETASYNC, ...).
  // REQUIRES: holds none. Returns LMDB's code; on failure holds none.
  // Environments begin theirs through environment::begin_txn (gated).
  //
  // A write transaction's MDB_NOMETASYNC is applied to the environment while
  // the transaction holds LMDB's writer lock: LMDB 0.9.24 ignores the flag
  // given to mdb_txn_begin and writes every commit's meta page through its
  // O_DSYNC descriptor (a second device flush per commit), but honours the
  // environment's flag. Every write transaction of the process begins here,
  // under the writer lock, so the flag always matches the transaction that
  // commits: one without MDB_NOMETASYNC clears it and its meta page is synced.
  int begin(MDB_env* env, unsigned flags) {
    int rc = mdb_txn_begin(env, nullptr, flags, &txn_);
    if (rc == MDB_SUCCESS && (flags & MDB_RDONLY) == 0) {
      rc = mdb_env_set_flags(env, MDB_NOMETASYNC, (flags & MDB_NOMETASYNC) != 0 ? 1 : 0);
      if (rc != MDB_SUCCESS) mdb_txn_abort(std::exchange(txn_, nullptr));
    }
    return rc;
  }
  MDB_txn* get() const { return txn_; }
  // The caller owns the transaction from now on (the pass stays held until
  // drop_pass(), abort() or destruction: commit, then drop it).
  MDB_txn* release() { return std::exchange(txn_, nullptr); }
  void abort() {
    if (txn_ != nullptr) mdb_txn_abort(std::exchange(txn_, nullptr));
    drop_pass();
  }
  // Takes a pass of `gate` (returning the one held, if any).
  void hold(env_gate& gate) {
    drop_pass();
    gate.enter();
    gate_ = &gate;
    holder_ = std::this_thread::get_id();
  }
  void drop_pass() {
    if (gate_ != nullptr) std::exchange(gate_, nullptr)->leave(holder_);
  }

 private:
  MDB_txn* txn_ = nullptr;
  env_gate* gate_ = nullptr;
  std::thread::id holder_;
};

// Closes the cursor it holds (if any) when destroyed.
class cursor_guard {
 public:
  cursor_guard() = default;
  ~cursor_guard() {
    if (cursor_ != nullptr) mdb_cursor_close(cursor_);
  }
  cursor_guard(const cursor_guard&) = delete;
  cursor_guard& operator=(const cursor_guard&) = delete;

  // Opens a cursor on `dbi` in `txn`. REQUIRES: holds none. Returns LMDB's code.
  int open(MDB_txn* txn, MDB_dbi dbi) { return mdb_cursor_open(txn, dbi, &cursor_); }
  MDB_cursor* get() const { return cursor_; }

 private:
  MDB_cursor* cursor_ = nullptr;
};

// An MDB_val that views `s` (LMDB does not write through it).
inline MDB_val to_val(std::string_view s) { return {s.size(), const_cast<char*>(s.data())}; }
// An MDB_val must not point into a temporary: name the string first.
MDB_val to_val(std::string&&) = delete;
inline std::string_view to_view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

// Keys of MDB_INTEGERKEY / MDB_INTEGERDUP databases: a native uint64.
inline MDB_val uint64_val(const uint64_t& v) {
  return {sizeof v, const_cast<uint64_t*>(&v)};
}
// REQUIRES: v.mv_size == 8.
inline uint64_t native_uint64(const MDB_val& v) {
  uint64_t out = 0;
  std::memcpy(&out, v.mv_data, sizeof out);
  return out;
}
// False when `v` is not 8 bytes long.
inline bool get_native_uint64(const MDB_val& v, uint64_t& out) {
  if (v.mv_size != sizeof out) return false;
  out = native_uint64(v);
  return true;
}

// Records of 8-byte little-endian integers under a name (the `meta`
// databases). get: MDB_SUCCESS with `v` (0 when absent; `*found` says which),
// MDB_CORRUPTED when the value is not 8 bytes, or LMDB's error.
int get_fixed64_value(MDB_txn* txn, MDB_dbi dbi, std::string_view key, uint64_t& v,
                      bool* found = nullptr);
int put_fixed64_value(MDB_txn* txn, MDB_dbi dbi, std::string_view key, uint64_t v);

// Maps an LMDB return code to a status; `what` says what was being done
// ("while <what>"): MDB_MAP_FULL, ENOSPC and EDQUOT -> storage_full (the
// write failed whole and may be retried), any other error -> io_error.
// Pure: a panic is made sticky by environment::check, not here.
status lmdb_status(int rc, std::string_view what);

// Helpers that decode stored bytes in LMDB-style code return MDB_CORRUPTED
// when the bytes do not decode; this maps that code to corruption and any
// other code as lmdb_status does.
status decode_status(int rc, std::string_view what);

}  // namespace derive
