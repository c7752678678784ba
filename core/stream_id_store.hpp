#pragma once
// The ids of the stream messages a cluster node ingested (docs/storage.md,
// "stream_ids", "stream_ids_by_seq"; docs/architecture.md, "Cluster mode").
// A message id (the publisher's `Derive-Msg-Id`) is remembered with the first
// stream sequence that carried it, and every ingested message is indexed by
// its sequence with its id, its body's digest and its publisher's ts. The
// ingest drops a message whose id is known (a publish the stream stored
// twice) and prunes by the stream alone (sequences and ts of the messages),
// so every node keeps the same ids and drops the same duplicates.
//
// Transactions belong to the caller (the event log's ingest). LMDB errors go
// through environment::check. Thread-safety: put and prune by the log's
// single writer; find and at in any transaction.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <derive/status.hpp>

#include "core/environment.hpp"

struct MDB_txn;

namespace derive {

// A message as the follower knows it: its id and a digest of its body.
struct stream_message_id {
  std::string id;  // "" when the message carries none
  uint64_t digest = 0;
  bool operator==(const stream_message_id& o) const {
    return id == o.id && digest == o.digest;
  }
};

// An id is kept while its message is among the last `stream_id_window`
// messages of the stream OR less than `stream_id_window_ms` older (by its
// publisher's ts) than the message being ingested: a publish is retried for
// at most its publish_timeout (10 s by default), so its duplicates fall well
// inside both. Fixed: every node must prune alike.
inline constexpr uint64_t stream_id_window = 10'000;
inline constexpr int64_t stream_id_window_ms = 2 * 60 * 1000;

class stream_id_store {
 public:
  explicit stream_id_store(environment& env) : env_(env) {}

  // Opens (creates) the two databases. REQUIRES: before any other call.
  status open();

  // The first stream sequence that carried `id`; nullopt when not remembered.
  result<std::optional<uint64_t>> find(MDB_txn* txn, std::string_view id) const;

  // The message ingested at `seq`; nullopt when none is recorded (a message
  // without an id, one pruned, or one ingested before this table existed).
  result<std::optional<stream_message_id>> at(MDB_txn* txn, uint64_t seq) const;

  // Records the message `m` (id non-empty) ingested at `seq`, stamped `ts`
  // by its publisher; `first`: its id was not known (find() said nullopt).
  // REQUIRES: a write transaction; the single writer.
  status put(MDB_txn* txn, uint64_t seq, int64_t ts, const stream_message_id& m, bool first);

  // Forgets, oldest first and at most 8 per call, the messages outside both
  // windows as seen from the message (seq, ts) being ingested.
  // REQUIRES: a write transaction; the single writer.
  status prune(MDB_txn* txn, uint64_t seq, int64_t ts);

 private:
  environment& env_;
  unsigned ids_ = 0, by_seq_ = 0;
};

}  // namespace derive
