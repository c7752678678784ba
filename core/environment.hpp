#pragma once
// One LMDB environment: the runtime opens two per data directory, the log's
// (the directory itself) and the views' (its `views/` subdirectory), so that a
// view commit never takes the log's writer lock (docs/storage.md). Owns the
// MDB_env and the handles of its named databases, and is the one place that
// decides an LMDB failure is fatal: after a panic (or EIO at a commit or a
// flush) it is sticky-failed and refuses every later write until reopened. A
// full map or disk (storage_full) is never fatal: the next write may succeed.
//
// Transactions: the caller owns each one in a txn_guard (core/lmdb_util.hpp);
// begin_write / check / commit are how core begins, checks and ends writes;
// reads begin with begin_txn(txn, MDB_RDONLY) and map errors with
// lmdb_status. Every transaction holds a pass of the environment's gate for
// its lifetime, so that compact_online() can wait until none is open.
// Thread-safety: every member may be called from any thread; LMDB allows one
// write transaction at a time (the log's sequencer, a view's runner).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <derive/options.hpp>
#include <derive/status.hpp>

#include "core/env_gate.hpp"
#include "core/journal.hpp"

struct MDB_env;
struct MDB_txn;

namespace derive {

class txn_guard;

class environment {
 public:
  // Opens (creating when needed) the data directory `path`; in
  // durability::full it first flushes whatever an earlier process committed
  // without flushing (so that what is read from now on is durable). With a
  // journal (options.journal_bytes > 0 in durability::full, or a `journal`
  // file in `path`: see "the journal" below) it first restores the last
  // checkpoint instead.
  // Errors: io_error naming the path and the reason.
  static result<std::unique_ptr<environment>> open(const std::string& path,
                                                   environment_options options = {});

  // Opens `path` as a *recomputable* environment (the views': everything in
  // it is a function of the durable log), whose commits never flush
  // (MDB_NOSYNC, whatever options.mode). A process crash loses nothing of it
  // (the page cache survives); an OS crash or a power loss may tear it. So a
  // marker file `path/boot` records the kernel's boot id (read from
  // `boot_id_path`) and whether the environment was closed cleanly: it is
  // written "dirty" and flushed before the environment opens, and "clean"
  // after a flush of everything at close. An environment found dirty under
  // another boot id (or with an unreadable marker) went down with the machine
  // holding unflushed pages: its files are deleted and it opens empty, with
  // `*discarded` set (the caller rebuilds its content). docs/storage.md.
  // `flush_commits`: the discarding check only; then the marker is removed
  // and the environment opens as open() does in durability::full (its
  // commits flush): for content whose progress must survive a power loss.
  // Errors: io_error (the boot id or the marker cannot be read or written).
  static result<std::unique_ptr<environment>> open_recomputable(const std::string& path,
                                                                environment_options options,
                                                                const std::string& boot_id_path,
                                                                bool flush_commits,
                                                                bool* discarded);
  ~environment();
  environment(const environment&) = delete;

  // Rewrites the data directory `path` (not open in this process) as a
  // compacted copy (mdb_env_copyfd2 with MDB_CP_COMPACT into
  // `data.mdb.compact`, flushed, then renamed over `data.mdb`): only the
  // pages in use are copied, each from its used bytes, so no freed page and
  // no stale byte of a page's free gap survives (docs/storage.md, "Erasure").
  // A crash before the rename leaves the old file and a temporary that the
  // next compaction replaces. Errors: io_error.
  static status compact(const std::string& path, environment_options options = {});
  environment& operator=(const environment&) = delete;

  // compact(), on this open environment while the process keeps using it
  // (docs/storage.md, "Erasure"): the gate closes (new transactions wait;
  // none is refused) and, once every open transaction of this process has
  // ended, the environment is copied compacted into `data.mdb.compact`,
  // flushed, closed, the copy renamed over `data.mdb`, the directory
  // flushed, the environment reopened, every named database reopened by name
  // (the handles may change) and every on_reopen() hook run; then the gate
  // opens. Crash point `erasure_compaction_renamed` (after the rename,
  // before the reopen). `*paused` (optional) receives how long the gate was
  // closed. Errors: unavailable (transactions stayed open for `quiesce`;
  // nothing changed: retry), io_error (a failed reopen makes the
  // environment sticky-failed). REQUIRES: the calling thread holds no
  // transaction of this environment.
  // Compactions of one environment never overlap (the eraser's and the
  // runtime's reclamation policy, actors/reclaimer.hpp): a second waits for
  // the first.
  status compact_online(std::chrono::milliseconds quiesce,
                        std::chrono::microseconds* paused = nullptr);

  // How much of the file is free: pages on LMDB's free list (the room that
  // copy-on-write left behind, reused by later commits) and the file's tail
  // past the last page in use. Reads one transaction. Errors: io_error.
  struct space_info {
    uint64_t file_bytes = 0;  // data.mdb's size
    uint64_t free_bytes = 0;
  };
  result<space_info> space() const;
  // When the last commit through commit() ended (the epoch: none yet).
  std::chrono::steady_clock::time_point last_commit() const;
  // Online compactions since open, and the bytes they gave back (the file's
  // size before less its size after).
  uint64_t compactions() const { return compactions_.load(std::memory_order_relaxed); }
  uint64_t bytes_reclaimed() const { return bytes_reclaimed_.load(std::memory_order_relaxed); }
  // Registers `reopened` (keyed by `owner`) to run after compact_online
  // reopened the environment, with the gate closed: owners of database
  // handles refresh them there with database(name). Thread-safe.
  void on_reopen(const void* owner, std::function<status()> reopened);
  // Unregisters `owner`'s hook (before the owner goes away).
  void forget_reopen(const void* owner);

  // Begins a transaction in `txn` (`flags`: MDB_RDONLY, 0, ...), holding a
  // gate pass until the guard ends it. Returns LMDB's code.
  int begin_txn(txn_guard& txn, unsigned flags) const;

  // The LMDB handle: it changes at compact_online(); transactions begin
  // through begin_txn / begin_write.
  MDB_env* handle() const { return env_; }
  const std::string& path() const { return path_; }
  const environment_options& options() const { return options_; }

  // The handle of the named database `name`, created on first use.
  // Thread-safe. Handles stay valid until compact_online() (see on_reopen).
  // REQUIRES: the calling thread holds no write transaction (it opens one).
  // `flags` are MDB_dbi flags (MDB_INTEGERKEY, MDB_DUPSORT, ...).
  result<unsigned> database(const std::string& name, unsigned flags = 0);

  // Marks the environment failed after an unrecoverable LMDB error (for
  // example MDB_PANIC); every later write is refused with `sticky_error()`.
  void fail(status error);
  // ok, or the error that made the environment refuse writes.
  status sticky_error() const;

  // Begins a write transaction in `txn` (`flags`: 0 or MDB_NOMETASYNC) unless
  // the environment refuses writes (then: sticky_error()). Errors: as check().
  status begin_write(txn_guard& txn, std::string_view what, unsigned flags = 0);

  // Maps the return code of an LMDB call made while writing: as lmdb_status
  // (MDB_MAP_FULL -> storage_full, else io_error), and an MDB_PANIC also
  // makes the environment sticky-failed.
  status check(int rc, std::string_view what);

  // Commits the transaction `txn` holds (afterwards it holds none), synced as
  // the durability mode and the transaction's flags say (MDB_NOMETASYNC: data
  // pages synced, the meta page written but not synced; the next commit's
  // sync or sync() makes it durable). Errors: as check(); EIO too makes the
  // environment sticky-failed.
  status commit(txn_guard& txn);

  // Flushes everything committed so far to disk (fdatasync), whatever the
  // durability mode. A failed flush makes the environment sticky-failed: the
  // OS may have dropped the pages it could not write. Errors: io_error.
  status sync();

  // --- the journal (options.journal_bytes > 0 in durability::full;
  // docs/storage.md, "The log's journal") ---
  // Commits are not flushed (MDB_NOSYNC). A checkpoint makes the environment
  // durable as it is (one flush), records its two meta pages and its file's
  // inode in the journal, and pins that snapshot with a read transaction
  // until the next checkpoint, so that LMDB reuses none of its pages. A
  // later commit is durable once its record is in the journal: open()
  // writes the checkpoint's meta pages back (whatever later commits left
  // half-written, the pinned pages are whole) and the owner replays the
  // records after it.
  bool journaled() const { return journal_ != nullptr; }
  // The records found after the checkpoint at open, in order, for the owner
  // to replay (a record may describe a commit the file already holds); until
  // journal_replayed() a checkpoint (and so any commit that is not deferred)
  // fails with unavailable: it would make them unreadable. Empty when not
  // journaled, and after journal_replayed().
  const std::vector<std::string>& journal_records() const;
  // The owner replayed them: checkpoints.
  status journal_replayed();
  // Makes the deferred commit just made durable: writes `record` (what the
  // owner needs to redo it) and flushes the journal; when the journal has no
  // room, checkpoints instead; every 1,024 records, or once the journal is
  // half full, checkpoints after it. Errors: io_error (sticky).
  status journal_commit(std::string_view record);
  // Takes a checkpoint now (nothing when not journaled). Errors: io_error.
  status checkpoint();
  // A checkpoint, then the journal's records overwritten with zeros (an
  // erasure: no record keeps a forgotten subject's bytes).
  status scrub_journal();
  // Deferred commits recorded since the last checkpoint.
  uint64_t journal_commits() const { return journal_commits_.load(std::memory_order_relaxed); }

  // Drops (deletes with their contents) every named database whose name
  // starts with `prefix`, in one write transaction; returns how many. Their
  // handles are forgotten (a later database() opens a new one).
  // REQUIRES: no transaction uses them.
  result<size_t> drop_databases(std::string_view prefix);

  // Overwrites the environment's free pages (docs/storage.md, "Erasure"):
  // LMDB is copy-on-write, so a page freed by a commit keeps its old bytes
  // until it is reused. Each of `rounds` rounds fills every reusable free
  // page with filler records of the database `derive.scrub` (one commit),
  // then drops it (another). Pages freed by commit T are reusable from
  // commit T + 2 on, when no read transaction older than T is open, so a
  // round frees only filler and 3 rounds cover what the commits before
  // freed. Returns the pages overwritten. Takes LMDB's writer lock: call it
  // where the environment's writers allow (the log's: on its writer).
  result<uint64_t> scrub_free_pages(int rounds = 3);
  // The names of the named databases that start with `prefix`, ascending.
  result<std::vector<std::string>> database_names(std::string_view prefix) const;

 private:
  struct named_db {
    unsigned dbi;
    unsigned flags;
  };
  environment() = default;
  // Reopens env_ and the named databases after compact_online's rename.
  status reopen();
  // REQUIRES: journal_mu_ held. `rebase`: the records after the current
  // checkpoint stay (open, onto a compacted copy). A failure is sticky.
  status checkpoint_locked(bool rebase = false);
  status take_checkpoint(bool rebase, MDB_txn*& pin);
  static result<std::unique_ptr<environment>> open_journaled(std::unique_ptr<environment> env);
  result<size_t> drop_databases_now(std::string_view prefix);
  // After a commit that was not deferred: a checkpoint (journal mode).
  status after_commit(bool deferred);
  MDB_env* env_ = nullptr;
  bool nosync_ = false;  // opened with MDB_NOSYNC
  std::string boot_id_;  // a recomputable environment: the boot it was opened in
  std::string path_;
  environment_options options_;
  mutable env_gate gate_;
  // Guards dbis_ and sticky_. Taken after LMDB's writer lock, never while
  // waiting for it (a writer may take mu_ inside its transaction).
  mutable std::mutex mu_;
  std::unordered_map<std::string, named_db> dbis_;
  status sticky_;
  std::atomic<std::thread::id> reopening_{};
  std::mutex compact_mu_;  // one compaction at a time
  std::atomic<int64_t> last_commit_ns_{0};  // steady_clock
  std::atomic<uint64_t> compactions_{0};
  std::atomic<uint64_t> bytes_reclaimed_{0};  // the thread running the reopen hooks
  std::mutex hooks_mu_;
  std::map<const void*, std::function<status()>> hooks_;
  // Journal mode.
  std::unique_ptr<journal> journal_;
  mutable std::mutex journal_mu_;
  MDB_txn* pin_ = nullptr;  // the checkpoint's snapshot
  bool records_pending_ = false;
  std::vector<std::string> records_;
  mutable std::atomic<bool> deferred_{false};  // the open write transaction's commit is journaled
  std::atomic<uint64_t> journal_commits_{0};
};

}  // namespace derive
