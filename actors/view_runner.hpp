#pragma once
// The view runner: one actor per view version, the only writer of its store.
//
// It is woken by `head_atom(h)` messages (from the sequencer for views of the
// log, from the upstream runner for derived views), reads the new input,
// runs the view code through a batch_txn and commits state, private state,
// changelog and offset in one view_store::commit. Then it calls `published`
// (still on the runner thread), which tells waiters, derived views and the hub
// (never the private changes).
//
// Batches: more than `live_batch` inputs behind -> up to `catch_up_batch` per
// commit (throughput), otherwise up to `live_batch` (latency). One batch per
// message, so stop/restart messages are handled between batches. Every batch
// also ends (and commits what it applied) as soon as the batch holds
// `batch_bytes` (batch_txn::bytes) or has run for `batch_time`, or the slot's
// `stopping` flag is set: so memory is bounded by bytes, not by event count,
// a long catch-up commits (and shows progress) at least every `batch_time`,
// and a stop waits for at most one input and one commit (two while a
// catch-up commits beside, below). Inputs are read
// from the source `read_chunk` at a time (a log's: or about
// `read_chunk_bytes` of records; an upstream view's changelog: at most 64
// entries), so at most that many are held.
// A batch that leaves the view still behind (its source ahead as of its
// commit) is followed by a view_store::step when it was a catch-up batch or
// changed at least `step_changes` keys, so that the next batch reuses the
// pages this one freed (docs/storage.md, "Space reclamation": the file grows
// by one batch's rewritten pages, not two). A small live batch frees too
// little to pay for the extra transaction.
//
// Commits beside the runner (`commit_beside`): a catch-up batch of a served
// view that leaves it behind, with no before_commit, is committed and
// published on a thread of its own while the runner applies the next batch
// on its warm cache (the two halves of a catch-up, applying and committing,
// then overlap). The next batch waits for that commit before it reads the
// store (batch_txn's before_read), before it commits, and before any other
// message is handled; if the commit failed (or threw), the next batch ends
// at once and is dropped, and the failed one is handled as an inline commit's
// failure; a paused view commits inline. Live batches always commit inline (a
// thread hand-off would add to their latency); the committer's thread ends
// once the view has caught up. A stop waits for at most one input and two
// commits (the one beside, then the batch cut short).
//
// Failures: an exception from view code at input N under failure_policy::stop
// commits everything before N, records the failure durably and stops the view
// (status failed, offset N-1); under failure_policy::dead_letter N's writes are
// discarded, a dead letter is recorded and the batch goes on. `restart_atom`
// clears the failure and resumes at N. A commit that fails with storage_full
// (map or disk full) does not fail the view: it pauses, retrying the batch
// with a growing delay (50 ms to 2 s) until space returns.
//
// Versions (docs/storage.md, "View versions"): a runner whose slot is not
// served builds at a lower priority: batches of at most an eighth of the
// bytes and time, and it yields its thread after each. While `live_pending`
// says live work waits, it yields to it: it puts its next batch off (by
// `building_pause`, at most `building_wait` in a row, so that it still moves
// on under continuous live work), ends a batch early (checked every
// `read_chunk` inputs), and while live work was seen in the last
// `building_recent`, its batches are a sixty-fourth of the inputs, bytes and
// time (short commits of the views' writer lock). It yields only while it
// gains on its source (over each `building_recent` it applied at least twice
// what its source grew by) and is more than a live batch behind, so that a
// rebuild converges under continuous live input. `commit_mu` is held
// from a commit to its publication, so that a cutover sees served offsets
// standing still; `committed` runs after it (outside the lock).
// `rebuild_atom` empties the store and starts over at offset 0, then tells
// `rebuilt` (which rebuilds the versions derived from it).
//
// Messages: (head_atom, uint64_t), (restart_atom), (rebuild_atom),
// (run_atom, done_callback): runs the callback on the runner's thread (the
// slot's `downstream` changes only there while it runs), (stop_atom,
// done_callback).

#include <atomic>
#include <chrono>
#include <optional>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/view_slot.hpp"
#include "core/log.hpp"
#include "core/view_store.hpp"

namespace derive {

struct runner_context {
  view_slot* slot = nullptr;
  event_log* log = nullptr;  // the source of views of the log
  uint64_t catch_up_batch = 10'000;
  uint64_t live_batch = 256;
  uint64_t batch_bytes = uint64_t{64} << 20;
  std::chrono::milliseconds batch_time{1000};
  // 256 events a read: at 64, a counting view's catch-up spent a few percent
  // more in read transactions and cursors (docs/benchmarks.md, catch-up).
  size_t read_chunk = 256;
  size_t read_chunk_bytes = size_t{1} << 20;
  uint64_t step_changes = 512;  // see "followed by a view_store::step" above
  // Runs after each successful commit, on the runner thread (before the
  // runner reads on) or, for a commit beside it, on the committing thread
  // while the runner applies the next batch (the runner handles no other
  // message meanwhile): `changes` are the entries just committed.
  std::function<void(view_slot&, uint64_t new_offset, std::vector<offset_changes>& changes)>
      published;
  // Optional: runs on the runner thread before each commit, after the batch
  // applied its inputs up to `new_offset`; a non-ok status fails the view
  // (not durably: a restart re-runs the batch; storage_full pauses it as a
  // failed commit does) and nothing is committed.
  // Processors append their outputs here (actors/processor.hpp).
  std::function<status(view_slot&, uint64_t new_offset)> before_commit;
  // Optional: true while live work is pending (a served view is behind its
  // source); a runner of a version not served then yields (above).
  std::function<bool()> live_pending;
  std::chrono::microseconds building_pause{500};
  std::chrono::milliseconds building_wait{10};
  std::chrono::milliseconds building_recent{100};
  bool commit_beside = false;  // see "Commits beside the runner" above
  std::mutex* commit_mu = nullptr;
  std::function<void(view_slot&)> committed;
  std::function<void(view_slot&)> rebuilt;
};

// Brings ctx.slot's store to offset `until` on the calling thread, batch
// after batch, with the runner's own reading, applying and committing, but
// without `published` or `before_commit` (audits rebuild a private copy with
// it: actors/audit.hpp); with ctx.live_pending it yields to live work as a
// version not served does (sleeping, as it runs on a thread of its own).
// The source (ctx.log, or ctx.slot->upstream) must
// be at `until` or beyond. Returns early (unavailable) once `cancel` is set.
// Errors: the view code's failure at an offset (failed_offset is set), the
// source's read errors, the store's commit errors.
status replay_until(runner_context& ctx, uint64_t until, const std::atomic<bool>& cancel,
                    uint64_t& inputs, std::optional<uint64_t>& failed_offset);

// Spawns the runner of ctx.slot; `detached` gives it its own thread (the
// runtime always does; tests with the test coordinator do not).
caf::actor spawn_view_runner(caf::actor_system& sys, runner_context ctx, bool detached = true);

}  // namespace derive
