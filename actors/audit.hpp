#pragma once
// Audits and scrubs (docs/operating.md, "Audits", "Scrub").
//
// run_audit rebuilds a private copy of a view, and of every view upstream of
// it, in a scratch environment under <data_dir>/audit/ (removed afterwards),
// with the runner's own code path (replay_until), up to the live view's
// offset; then it takes a snapshot of the live view and compares: the digest
// committed with the live state, the rebuild's digest, and both states
// walked in key order (which also catches a stored state changed underneath
// its digest). It never writes to the live view.
//
// The auditor owns the runtime's audit thread (at a low CPU priority): it
// runs queued audits and scrubs, and audits every view each audit_interval
// when that is set.
//
// Locks: both take runtime::impl::storage_mu shared while they work and
// stop soon after `cancel` is set (runtime::stop sets it before it waits).

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <derive/audit.hpp>
#include <derive/status.hpp>

#include "actors/runtime_state.hpp"

namespace derive {

// REQUIRES: storage open and storage_mu held (shared) by the caller.
// Errors: unavailable (cancelled), invalid_parameter (a processor in the
// chain). Every other failure is an audit_result with ok false and `error`.
result<audit_result> run_audit(runtime::impl& rt, view_slot& slot,
                               const std::atomic<bool>& cancel);

// Records `result` as the slot's last audit (and logs it).
void record_audit(view_slot& slot, audit_result result);

// REQUIRES: as run_audit. Updates `progress` (under its lock) as it goes.
scrub_result run_scrub(runtime::impl& rt, const std::atomic<bool>& cancel,
                       const std::function<void(const scrub_result&)>& progress);

class auditor {
 public:
  // Starts the thread. REQUIRES: storage open; `rt` outlives the auditor.
  explicit auditor(runtime::impl& rt);
  // Cancels what runs and joins the thread.
  ~auditor();

  // Queues an audit of the slot with this index / a scrub.
  void enqueue_audit(size_t slot_index);
  void enqueue_scrub();

 private:
  void loop();
  void audit_all();

  runtime::impl& rt_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace derive
