#pragma once
// The core side of <derive/view_snapshot.hpp>: a snapshot owns one read
// transaction (begun by view_store::snapshot) and reads the view's state and
// private databases in it; the transaction ends with the snapshot. Used by
// one thread at a time (MDB_NOTLS lets it move between threads).

#include <derive/view_snapshot.hpp>

#include "core/lmdb_util.hpp"

namespace derive {

class view_snapshot::impl {
 public:
  txn_guard txn;  // the snapshot's read transaction
  // The store's handles, read once `txn` began: an online compaction may
  // renumber them until then (environment::compact_online).
  unsigned state_dbi = 0;
  unsigned private_dbi = 0;
  unsigned meta_dbi = 0;  // the store's meta (offset, digest)
};

// The impl behind a snapshot, for core's own readers (core/state_compare.hpp).
struct snapshot_access {
  static const view_snapshot::impl& of(const view_snapshot& s) { return *s.impl_; }
};

}  // namespace derive
