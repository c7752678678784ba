#pragma once
// runtime::impl — the state behind derive::runtime, shared by the files that
// implement it (runtime.cpp: lifecycle; runtime_reads.cpp; runtime_writes.cpp;
// runtime_metrics.cpp) and by actor_handles.cpp. A state struct in CAF's
// manner: the runtime's methods work on it directly, nothing is forwarded.
//
// Locks: `lifecycle_mu` serializes start() and stop(). `storage_mu` guards the
// open storage and the actor handles: shared for every read and call,
// exclusive in start() and stop() only while they open or close storage —
// never while waiting for an actor, whose callbacks may call the runtime.
// `append_mu` orders append() against stop(): appends send under a shared
// lock, stop() flips `accepting` under the exclusive lock, so every append
// sent before is in the sequencer's mailbox ahead of its stop message.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <derive/runtime.hpp>

#include "actors/hub.hpp"
#include "actors/processor.hpp"
#include "actors/publisher.hpp"
#include "actors/sequencer.hpp"
#include "actors/view_slot.hpp"
#include "actors/waiters.hpp"
#include "cluster/stream_log.hpp"
#include "core/environment.hpp"
#include "core/log.hpp"

namespace derive {

class eraser;
class reclaimer;
// One view and its versions (docs/storage.md, "View versions").
struct view_group {
  std::string name;
  std::vector<view_slot*> slots;     // every version (and upstream binding), declared or stale
  std::optional<size_t> upstream;    // the group it reads; nullopt: the log
  std::vector<size_t> downstream;    // groups that read it
  std::optional<uint32_t> pinned;    // set by cutover()/rollback(): serve this version
  view_slot* previous = nullptr;     // served before the last cutover (rollback)
  std::vector<uint32_t> retired;     // versions whose storage was freed at start
};
using serving_table = std::vector<view_slot*>;  // by group
class auditor;

struct runtime::impl {
  explicit impl(runtime_options options);
  ~impl();

  // REQUIRES: storage_mu held (shared). The serving version of `name`;
  // nullptr when unknown.
  view_slot* find(const std::string& name) const;
  // REQUIRES: storage_mu held (shared), running. The serving slot of each group.
  std::shared_ptr<const serving_table> serving_now() const {
    return std::atomic_load(&serving);
  }
  // The head of `slot`'s source: the log's, or its upstream version's offset.
  uint64_t source_head(const view_slot& slot) const;
  // True while live work is pending: a served view (not stale, not failed)
  // is behind its source's head. Versions built beside the served ones
  // yield to it (view_runner.hpp). Any thread, while runners run.
  bool live_work_pending() const;

  // --- versions (runtime_versions.cpp) ---
  // REQUIRES: cutover_mu held. Switches every view whose preferred ready
  // version differs from the served one, together with the views derived
  // from it, in one step; records the choice durably. True if it switched.
  bool try_cutover();
  // Rebuilds, beside the served ones, the declared versions of `views` that
  // are not served (and the versions derived from them) from offset 0; the
  // rebuilt versions are served once ready (as any building version).
  status rebuild_beside(const std::vector<std::pair<std::string, uint32_t>>& versions);
  // REQUIRES: lifecycle_mu and storage_mu (exclusive) held, running. Builds
  // a new generation of group `g`'s served slot beside it from 0 (with the
  // declared versions derived from it reading the copy), served once ready;
  // the served slot and its consumers are then retired. Restarts a copy
  // already building.
  // For an erasure (actors/eraser.cpp) `keep_through` is set: each copy
  // starts from its source's newest checkpoint at or before it
  // (view_store::restore_from; none: from 0) and is held
  // (view_slot::held) until the eraser releases it; the copies, sources
  // first, are added to `copies`.
  status rebuild_served(size_t g, std::optional<uint64_t> keep_through = std::nullopt,
                        std::vector<view_slot*>* copies = nullptr);
  // `copy` (built beside its group's served slot) could be served now but
  // for an erasure's hold: it runs, has not failed, is caught up.
  bool caught_up(const view_slot& copy) const;
  // On the audit thread, after a cutover away from the stale or superseded
  // `slot`: stops its runner, waits out the reads that found it served
  // (storage_mu taken exclusively once), then empties its store
  // (clear_view_store) and reports it retired.
  void retire(view_slot& slot);
  // The application's validators for each event's type.
  status run_validators(const checked_append& request) const;
  // The append path of runtime::append after its checks: validators, then
  // the sequencer; `done` runs once (on the caller's thread on an error
  // found before the sequencer).
  void submit(checked_append request, std::function<void(result<append_outcome>)> done);
  // submit() for processors, whose runners start before appends are
  // accepted: waits until they are, or until `stopping` is set.
  void submit_when_open(checked_append request, std::function<void(result<append_outcome>)> done,
                        const std::atomic<bool>& stopping);

  runtime_options options;
  caf::actor_system_config config;
  std::unique_ptr<caf::actor_system> system;

  // Declared slots first (declaration order, `declared` of them), then, while
  // running, the versions found on disk and the extra upstream bindings.
  std::vector<std::unique_ptr<view_slot>> slots;
  size_t declared = 0;
  std::vector<view_group> groups;  // while running
  std::unordered_map<std::string, size_t> group_of;
  // The serving slot of each group: replaced whole (atomic_store) by a
  // cutover, so that every reader sees one consistent choice.
  std::shared_ptr<const serving_table> serving;
  // Held by a serving runner from its commit to its publication and by a
  // cutover, so that a cutover sees the served offsets standing still.
  std::mutex cutover_mu;
  // Orders subscribe() against a cutover's switch (never held long).
  std::mutex serving_mu;
  std::unordered_map<std::string, std::function<status(const event_input&)>> validators;
  // The processors' outboxes, by slot index.
  std::unordered_map<size_t, std::shared_ptr<processor_outbox>> outboxes;

  std::mutex lifecycle_mu;
  mutable std::shared_mutex storage_mu;
  std::atomic<bool> running{false};
  std::unordered_map<std::string, view_slot*> by_name;
  std::unique_ptr<environment> env;        // the log's: <data_dir>
  std::unique_ptr<environment> views_env;  // every view store's: <data_dir>/views
  std::unique_ptr<event_log> log;
  std::unique_ptr<stream_log> stream;      // cluster mode: the log's system of record
  std::unique_ptr<subscription_registry> subs;
  std::unique_ptr<waiter_registry> waiters;
  std::unique_ptr<publisher> pub;
  sequencer_counters counters;
  caf::actor sequencer;
  // The runners of the views of the log, told of each new head: replaced
  // whole (atomic_store) when a rebuild of a served version adds one.
  std::shared_ptr<const std::vector<caf::actor>> log_runners;
  caf::actor hub;
  std::unique_ptr<eraser> erasure;  // forget(); while running
  std::unique_ptr<reclaimer> reclaim;  // options.reclaim.enabled; while running

  // Audits and scrubs (actors/audit.hpp): the audit thread while running;
  // `audits_cancel` is set by stop() so that audits end before storage closes.
  std::unique_ptr<auditor> audits;
  std::atomic<bool> audits_cancel{false};
  mutable std::mutex scrub_mu;
  scrub_result scrub;  // guarded by scrub_mu

  std::shared_mutex append_mu;
  bool accepting = false;
  std::condition_variable_any append_open;  // notified when accepting or stopping is set
};

// Sends `stop_atom` with a callback to `actor` and waits until the actor ran
// it, or dropped the message (an actor that is already gone).
void stop_and_wait(const caf::actor& actor);

// The errors every part of the runtime answers with.
status not_running();
status no_such_view(const std::string& name);

}  // namespace derive
