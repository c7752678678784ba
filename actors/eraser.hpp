#pragma once
// The eraser: forgets subjects (docs/storage.md, "Erasure") on a thread of
// its own, one batch of requests at a time, so that a forget queues behind
// the one running and requests that arrive together share one rebuild.
//
// For a batch: (1) the requests are recorded durably in the log (before any
// other work), (2) the sequencer redacts the subjects' records and their
// idempotency keys, (3) when anything was redacted every view is rebuilt
// from the redacted log, each from its newest checkpoint before the first
// redacted offset (later checkpoints are deleted; docs/storage.md, "View
// checkpoints") (reads of a rebuilding view answer `unavailable`, its
// subscribers are reset when it is done), (4) the views' free pages are
// scrubbed, (5) one receipt per subject is appended (idempotent: a resumed
// erasure replays it), (6) the requests are finished and the log's free
// pages scrubbed, (7) both environments are compacted while the runtime
// runs, so that no file holds the subjects' bytes when the request is
// answered. A crash before (6) leaves the request recorded: runtime::start
// resumes it; one before (7) ends leaves compact_pending: the next start
// compacts.
//
// Retention (docs/storage.md, "Retention"; actors/retention.cpp) is a second
// kind of work for the same thread and the same steps: every
// retention_interval of the log clock (and on sweep()) each rule's expired
// events are found from where its last sweep ended, recorded durably as the
// rule's mark, redacted (redact_offsets), the views rebuilt and scrubbed as
// above, one `derive.retention` receipt appended per rule, and the marks
// finished; a mark left pending by a crash is finished by the first sweep
// (every start begins with one).
//
// Where view versions plug in: rebuild_views() resets each view in place
// and rebuilds it; a side-by-side rebuild with an atomic cutover replaces
// that one function (the gate in view_slot::erasing then becomes unnecessary).

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
  // before the thread starts, so they come before its first sweep).
  explicit eraser(runtime::impl& rt, std::vector<std::string> resume = {});
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
  bool views_gated() const;
  // Rebuilds every view from the redacted log, each from its newest
  // checkpoint at or before `keep_through` (the offset before the first
  // redacted event; 0: from offset 1).
  status rebuild_views(std::vector<std::string>& rebuilt, uint64_t keep_through);
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
  std::thread thread_;
};

}  // namespace derive
