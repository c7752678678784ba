#pragma once
// The eraser: forgets subjects (docs/storage.md, "Erasure") on a thread of
// its own, one batch of requests at a time, so that a forget queues behind
// the one running and requests that arrive together share one rebuild.
//
// For a batch: (1) the requests are recorded durably in the log (before any
// other work), (2) the sequencer redacts the subjects' records and their
// idempotency keys, (3) when anything was redacted every view is rebuilt
// from the redacted log with the mechanism of view versions (docs/storage.md,
// "Erasure", "View versions"): a new generation of each served copy is built
// beside it, from the served copy's newest checkpoint before the first
// redacted offset (docs/storage.md, "View checkpoints"), while the old copy
// keeps serving reads and subscriptions; once every new generation has caught
// up they are cut over together (subscribers reset, offsets never backwards)
// and the old copies dropped (versions not served are rebuilt in place; a
// stale served version, which has no code, is emptied and answers
// `unavailable` until a declared version is ready), (4) the views' free
// pages are scrubbed, (5) one receipt per subject is appended (idempotent: a
// resumed erasure replays it), (6) the requests are finished and the log's
// free pages scrubbed, (7) both environments are compacted while the runtime
// runs, so that no file holds the subjects' bytes when the request is
// answered. A crash before (6) leaves the request recorded: runtime::start
// resumes it (a new generation it was building goes on building, and is
// rebuilt in place from its checkpoint); one before (7) ends leaves
// compact_pending: the next start compacts.
//
// Retention (docs/storage.md, "Retention"; actors/retention.cpp) is a second
// kind of work for the same thread and the same steps: every
// retention_interval of the log clock (and on sweep()) each rule's expired
// events are found from where its last sweep ended, recorded durably as the
// rule's mark, redacted (redact_offsets), the views rebuilt and scrubbed as
// above, one `derive.retention` receipt appended per rule, and the marks
// finished; a mark left pending by a crash is finished by the first sweep
// (every start begins with one).

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <derive/erasure.hpp>
#include <derive/metrics.hpp>
#include <derive/runtime.hpp>
#include <derive/status.hpp>

namespace derive {

class event_log;
class view_slot;

// Checks options.retention (docs/storage.md, "Retention"): invalid_parameter
// naming the rule for a bad pattern, a keep <= 0, a reserved type, two rules
// matching a common type, a retention_interval <= 0, or cluster mode.
status check_retention(const runtime_options& options);
// True when retention rule `pattern` matches event type `type`.
bool retention_matches(std::string_view pattern, std::string_view type);
// [[first,last],...] of ascending offsets (receipts).
void append_offset_ranges(std::string& out, const std::vector<uint64_t>& offsets);

class eraser {
 public:
  using callback = std::function<void(result<erasure_receipt>)>;
  using sweep_callback = std::function<void(result<retention_sweep>)>;

  // REQUIRES: the runtime's storage and actors are running; stop() before
  // they stop. `resume`: subjects whose recorded erasure is resumed (queued
  // before the thread starts, so they come before its first sweep);
  // `rebuild_owed`: an erasure or a sweep was interrupted, so the first batch
  // or sweep rebuilds the views even when it redacts nothing new.
  explicit eraser(runtime::impl& rt, std::vector<std::string> resume = {},
                  bool rebuild_owed = false);
  ~eraser();

  // Queues the erasure of `subject`; `done` (may be empty) runs once on the
  // eraser's thread with the receipt, or with an error (unavailable when
  // the runtime stops first).
  void request(std::string subject, callback done);
  // Queues a retention sweep; `done` runs once on the eraser's thread.
  void sweep(sweep_callback done);
  // The retention counters (runtime_options.retention).
  retention_metrics retention() const;
  // Finishes nothing more: the running step ends, queued requests are
  // answered `unavailable` (they stay recorded and resume at the next start).
  void stop();

 private:
  struct pending {
    std::string subject;
    callback done;
  };
  void run();
  // Waits for work; false when stopping. Sets `due` when the log clock says
  // a retention sweep is due.
  bool next(std::vector<pending>& batch, std::vector<sweep_callback>& sweeps, bool& due);
  status erase(std::vector<pending>& batch);
  result<retention_sweep> sweep_now();
  result<retention_sweep> record_sweep(retention_sweep& out, uint64_t expired);
  // Appends a receipt (idempotent by `idempotency_key`: a resumed step
  // replays it; a receipt differing only in what a resumed step found stands).
  result<append_outcome> append_receipt(event_input receipt, std::string idempotency_key);
  int64_t clock_ms() const;
  // Rebuilds every view from the redacted log, each from its newest
  // checkpoint at or before `keep_through` (the offset before the first
  // redacted event; 0: from offset 1); the names of the views rebuilt
  // into `rebuilt`. Returns once the new generations serve and the old
  // copies are dropped.
  status rebuild_views(std::vector<std::string>& rebuilt, uint64_t keep_through);
  // Starts a new generation beside each served copy (runtime::impl::
  // rebuild_served, held) into `copies`; the versions not served to rebuild
  // in place into `in_place` (not served until they start over); the copies
  // to retire into `old`.
  status start_generations(uint64_t keep_through, std::vector<view_slot*>& copies,
                           std::vector<view_slot*>& in_place, std::vector<view_slot*>& old);
  // Rebuilds `slots` in place (erase_atom), sources first; returns once done.
  status rebuild_in_place(std::vector<view_slot*>& slots, uint64_t keep_through);
  // Waits until every copy caught up, releases them (one cutover), waits
  // until none of `old` serves and every one is retired.
  status cut_over(std::vector<view_slot*>& copies, std::vector<view_slot*>& old);
  // When the log says compact_pending: both environments compacted while
  // the runtime runs (environment::compact_online; transactions wait meanwhile),
  // then the flag cleared. Errors: unavailable (transactions stayed open).
  status compact();
  status on_writer(std::function<status(event_log&)> fn);
  bool stopping() const;

  runtime::impl& rt_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<pending> queue_;
  std::vector<sweep_callback> sweeps_;
  int64_t next_sweep_at_ = 0;  // log clock; the first sweep runs at start
  bool stop_ = false;
  mutable std::mutex stats_mu_;
  retention_metrics stats_;
  bool rebuild_owed_ = false;  // the eraser's thread only
  std::thread thread_;
};

}  // namespace derive
