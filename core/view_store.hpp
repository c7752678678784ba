#pragma once
// Durable state of one view version: key -> JSON value, a changelog
// (view offset -> the keys changed at that offset and their new values) and
// the view's offset, all committed together in one LMDB transaction, so that
// state, changelog and offset always agree, even after a crash.
//
// A view's offset is a log offset (protocol.md): the last log event whose
// effect the state includes. For a view derived from another view it is the
// upstream view's offset that it has fully applied.
//
// A view may also keep private state: keys and values of the same kind, in a
// separate database, committed in the same transaction as the state and the
// offset, but never in the changelog nor in get/range, so readers, subscribers
// and derived views never see it; the view's queries read it with
// view_snapshot::get_private.
//
// Thread-safety: commit() and reset() by one writer at a time (the view's
// runner); snapshots and changelog reads from any thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <derive/changelog.hpp>
#include <derive/status.hpp>
#include <derive/view_info.hpp>
#include <derive/view_snapshot.hpp>

#include "core/environment.hpp"
#include "core/view_digest.hpp"
#include "core/view_meta.hpp"  // view_failure

struct MDB_txn;

namespace derive {

// Changelog retention (docs/storage.md, "Changelog retention"): an entry is
// pruned as soon as any limit says so; 0 turns a limit off (all three 0:
// keep everything). Pruning happens in commits, oldest first.
struct view_store_options {
  // How many view offsets of changelog to keep behind the view's offset.
  uint64_t changelog_retention = 100'000;
  // At most this many changelog entries are pruned per commit, plus as many
  // as the commit appends (so pruning keeps pace with any batch size).
  unsigned prune_per_commit = 256;
  // At most max(changelog_max_bytes, changelog_state_fraction x the state
  // database's size) bytes of changelog (keys and values of `changes`); the
  // newest entry is always kept. changelog_max_bytes 0: no byte limit.
  uint64_t changelog_max_bytes = uint64_t{8} << 20;
  double changelog_state_fraction = 0.25;
  // Entries are pruned once the commit that wrote them is this old (to
  // within changelog_max_age / 32, the spacing of the age marks). 0: no limit.
  std::chrono::milliseconds changelog_max_age = std::chrono::hours(24);
  // Milliseconds since the Unix epoch; empty: the system clock. For tests.
  std::function<int64_t()> clock;
  // View checkpoints (docs/storage.md, "View checkpoints"): a commit whose
  // new offset is at least `checkpoint_every` past the newest checkpoint
  // copies the state and the private state, in the same transaction, into
  // one of `checkpoints_kept` slots (an empty one, else the oldest), so an
  // erasure can rebuild from the latest checkpoint before its first event.
  // 0: no new checkpoints (those on disk still serve restore()).
  uint64_t checkpoint_every = 0;
  unsigned checkpoints_kept = 2;
};

// A change of a commit's batch made without comparing it with its key's value
// before it (a blind write: batch_txn records a put or an erase of a key it
// has not read yet without looking it up): batch[entry].changes[change]. The
// commit compares it with that value: the committed one, which it meets
// while writing the state, for the first change of its key in the batch,
// the key's previous change in the batch for the others
// (view_store::commit).
struct blind_change {
  uint32_t entry = 0;
  uint32_t change = 0;
  friend bool operator==(const blind_change& a, const blind_change& b) {
    return a.entry == b.entry && a.change == b.change;
  }
  friend bool operator<(const blind_change& a, const blind_change& b) {
    return a.entry != b.entry ? a.entry < b.entry : a.change < b.change;
  }
};

class view_store {
 public:
  // Opens (creating) the store of view `name` at `version` in `env`, under
  // `label` (core/view_names.hpp; empty: view_label(name, version)).
  static result<std::unique_ptr<view_store>> open(environment& env, const std::string& name,
                                                  uint32_t version,
                                                  view_store_options options = {},
                                                  const std::string& label = {});
  ~view_store();

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  const std::string& label() const { return label_; }

  // In ONE transaction: applies every change of `batch` to the state, appends
  // the non-empty entries to the changelog, records `dead_letters`, applies
  // `private_changes` (in order) to the private state, sets the view's offset
  // to `new_offset` and prunes old changelog entries. Private changes have no
  // changelog entry.
  // REQUIRES: new_offset >= offset(); batch offsets ascending, each in
  // (offset(), new_offset]; dead letter offsets in (offset(), new_offset];
  // private changes only with new_offset > offset(); no empty value; a single
  // writer. A violation is refused with invalid_parameter and writes nothing.
  // Errors: storage_full, io_error (nothing changed). Keys may be of any
  // length, including empty.
  status commit(const std::vector<offset_changes>& batch, uint64_t new_offset,
                const std::vector<dead_letter>& dead_letters = {},
                const std::vector<key_change>& private_changes = {});
  // commit() of a batch with blind changes (`blind`: ascending, changes of
  // `batch`). Each is compared with its key's value before it (the committed
  // value, met as the state is written in key order, or the key's previous
  // change in the batch) and is dropped when it changes nothing (a put of
  // the value the key has, an erase of a missing key): from the changelog
  // and, once the commit succeeded, from `batch` too, with any entry it
  // leaves empty. So state, changelog and digest are those of the same batch
  // with every value looked up first.
  // REQUIRES: as commit(); `blind` refers to changes of `batch`.
  status commit(std::vector<offset_changes>& batch, const std::vector<blind_change>& blind,
                uint64_t new_offset, const std::vector<dead_letter>& dead_letters = {},
                const std::vector<key_change>& private_changes = {});

  // One small write transaction that rewrites the stored offset with its own value:
  // nothing changes but LMDB's transaction count. LMDB reuses the pages a
  // commit freed only from the second commit after it (it keeps the previous
  // commit intact), so two large commits back to back each grow the file by a
  // copy of the pages they rewrite; a step between them lets the second reuse
  // the pages the first freed. The runner takes one after each catch-up
  // batch (docs/storage.md, "The views' commits"). Errors: storage_full,
  // io_error (nothing changed).
  status step();

  // The committed offset.
  uint64_t offset() const;

  // A consistent read snapshot. Errors: io_error.
  result<view_snapshot> snapshot() const;

  // Changelog entries with offset > from, at most `limit` entries.
  result<changelog_page> changes_since(uint64_t from, size_t limit) const;

  // The bytes the changelog holds (keys and values of `changes`), as of the
  // last commit: the running total kept in meta.
  uint64_t changelog_bytes() const;

  // The digest of the state (core/view_digest.hpp) as of the last commit: it
  // is updated by every commit and stored in meta in the same transaction as
  // the state and the offset. A store written before digests existed gets
  // its digest computed once when it opens (recorded by its next commit).
  view_digest digest() const;

  // Durable failure record: set when the view stops on an error, cleared when
  // it is restarted.
  status set_failure(std::optional<view_failure> failure);
  std::optional<view_failure> failure() const;

  // Dead letters, ascending by offset.
  result<std::vector<dead_letter>> dead_letters() const;

  // Erases state, private state, changelog, offset, failure, dead letters
  // and checkpoints (rebuild from 0). A `resume_floor` > 0 is recorded in the same
  // transaction: the store is being rebuilt after an erasure up to that
  // offset, so a client that holds the view as of an offset below it must
  // start over from a snapshot (the rebuilt changelog does not remove what
  // the client holds).
  status reset(uint64_t resume_floor = 0);
  // The resume floor of the last reset (0: none). Errors: io_error.
  result<uint64_t> resume_floor() const;

  // The offsets of the checkpoints held, ascending.
  std::vector<uint64_t> checkpoints() const;
  // The newest checkpoint at or before `at` (0: none).
  uint64_t checkpoint_at_or_before(uint64_t at) const;
  // For a rebuild after an erasure whose first redacted offset is
  // keep_through + 1: in ONE transaction, sets the state and the private
  // state to the newest checkpoint C <= keep_through, deletes the changelog
  // entries and dead letters after C, deletes every checkpoint after
  // keep_through (they may hold redacted data), clears the failure, sets the
  // offset to C and records `resume_floor` (as reset). Without such a
  // checkpoint it is reset(resume_floor) (C = 0). Returns C.
  result<uint64_t> restore(uint64_t keep_through, uint64_t resume_floor);
  // For a copy of `source` built beside it after an erasure whose first
  // redacted offset is keep_through + 1 (a new generation; both stores in
  // the same environment): in ONE transaction, sets this store's state and
  // private state to `source`'s newest checkpoint C <= keep_through, its
  // offset and digest to C's, keeps that checkpoint (a later erasure can
  // start from it again) and, `with_changelog`, copies source's changelog
  // entries and dead letters up to C (a consumer restoring a checkpoint of
  // its own reads on from them); without, the changelog is served from C on.
  // Without such a checkpoint nothing changes (C = 0). Returns C.
  // REQUIRES: this store is empty (just opened, nothing committed); the
  // single writer of this store; `source` is not reset meanwhile.
  result<uint64_t> restore_from(const view_store& source, uint64_t keep_through,
                                bool with_changelog);

 private:
  class impl;
  view_store(std::string name, uint32_t version, std::string label, std::unique_ptr<impl> impl);
  std::string name_;
  uint32_t version_;
  std::string label_;
  std::unique_ptr<impl> impl_;
};

}  // namespace derive
