#pragma once
// The shared state of one declared view: its definition, its store, and what
// its runner publishes (offset, status) for readers on any thread.
//
// Ownership: the runtime owns the slots for as long as storage is open. The
// runner writes offset/status; everyone else only reads them.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>

#include <derive/view.hpp>
#include <derive/view_info.hpp>

#include "core/view_store.hpp"

namespace derive {

class view_slot {
 public:
  view_slot(view_def def, size_t index) : def_(std::move(def)), index_(index) {}

  const view_def& def() const { return def_; }
  const std::string& name() const { return def_.name(); }
  size_t index() const { return index_; }

  // Versions (docs/storage.md, "View versions"): every version of a view,
  // and for a derived view every upstream version it reads, is a slot of its
  // own; the runtime serves one slot per view (its `group`).
  size_t group = 0;     // index in runtime::impl::groups
  bool stale = false;   // kept from disk, not declared: no runner, frozen
  // A stale slot emptied once no longer served (runtime::impl::retire).
  std::atomic<bool> retired{false};
  bool processor = false;
  // Set by the runtime's cutover (under its cutover lock), read by anyone.
  std::atomic<bool> serving{false};
  // The offset at which it began to be served: a changelog read resuming
  // before it gets a reset (those changes were another version's).
  std::atomic<uint64_t> serving_since{0};
  const std::string& label() const { return label_; }  // the store's, once attached
  // The store's generation (core/view_names.hpp), once attached: a copy of
  // the served version rebuilt beside it has the next one.
  uint32_t generation() const { return generation_; }
  // Set when a later generation of this slot (or of its upstream) is built
  // beside it: once no longer served, it is retired (runtime::impl::retire).
  std::atomic<bool> superseded{false};
  // Rebuilds asked of its runner and not yet started (request_rebuild): its
  // state is about to be emptied, so it is not ready to be served.
  std::atomic<int> rebuilds_pending{0};
  // Asks its runner to empty the store and start over at offset 0.
  void request_rebuild();
  // Its runner: set before the slot is reachable from any other (an
  // upstream's `downstream`, its group's slots), cleared at stop; none for a
  // stale slot.
  caf::actor runner;

  // Set once at start, before the runner exists.
  void attach(std::unique_ptr<view_store> store);
  void detach_store() { store_.reset(); }
  view_store* store() const { return store_.get(); }
  view_slot* upstream = nullptr;           // the source view, or nullptr: the log
  std::vector<view_slot*> downstream;      // views that consume this one

  // The committed offset, as published by the runner after each commit.
  uint64_t offset() const { return offset_.load(std::memory_order_acquire); }
  void publish_offset(uint64_t offset) { offset_.store(offset, std::memory_order_release); }

  // Counters for metrics.
  std::atomic<uint64_t> applied{0};  // inputs applied since start
  std::atomic<uint64_t> commits{0};
  std::atomic<uint64_t> bytes_written{0};  // keys + values committed (state and private)
  std::atomic<uint64_t> largest_value{0};  // the largest value committed, in bytes

  // Progress: called by the runner after each commit; the rate is measured
  // over windows of at least a second.
  void note_progress(uint64_t offset);
  double events_per_second() const;
  // This version's role and progress; `source_head` is its source's head.
  view_version_info version_info(uint64_t source_head, uint64_t lag_threshold) const;

  // Set by runtime::stop before the runners are told to stop: the runner ends
  // its current batch after the input it is applying (view_runner.hpp).
  std::atomic<bool> stopping{false};

  // Set while a stale version still served (no code: it cannot be rebuilt
  // beside itself) is emptied by an erasure (actors/eraser.hpp) and no
  // declared version is ready to take over: its reads answer `unavailable`
  // and its changes go to no subscriber. Every other view keeps serving its
  // old copy while a new generation is built beside it.
  std::atomic<bool> erasing{false};
  // A new generation built by an erasure (actors/eraser.hpp): `held` until
  // every such copy has caught up (not served before: the views cut over
  // together); `for_erasure` for good, so that its cutover resets clients
  // resuming at the old copy's offset (serving_since is one past it).
  std::atomic<bool> held{false};
  std::atomic<bool> for_erasure{false};

  // Status. `lag_threshold` is runtime_options::live_batch.
  void set_active(bool rebuilding);
  void set_caught_up();  // ends `rebuilding`
  void set_failed(uint64_t failed_offset, std::string error);
  void set_stopped();
  bool failed() const;
  view_info info(uint64_t head, uint64_t lag_threshold) const;

  // The last audit of this view version (actors/audit.hpp).
  void set_audit(audit_result result);
  std::optional<audit_result> audit() const;

 private:
  enum class phase { active, failed, stopped };
  view_def def_;
  size_t index_;
  std::unique_ptr<view_store> store_;
  std::string label_;
  uint32_t generation_ = 0;
  std::atomic<uint64_t> offset_{0};
  mutable std::mutex mu_;
  phase phase_ = phase::stopped;
  bool rebuilding_ = false;
  std::string error_;
  std::optional<uint64_t> failed_offset_;
  int64_t window_ms_ = 0;        // runner thread only
  uint64_t window_offset_ = 0;   // runner thread only
  std::atomic<double> rate_{0};  // inputs per second in the last window
  std::atomic<int64_t> rate_at_ms_{0};
  std::optional<audit_result> audit_;
};

// A copy of `like` (name, source, queries) at `version`, for a stale version
// kept from disk: it has no code to apply, only queries to answer.
view_def stale_def(const view_def& like, uint32_t version);

}  // namespace derive
