#pragma once
// The runtime: one object that opens the data directory, starts the sequencer,
// one runner per view and the subscription hub, and stops them cleanly.
//
//   derive::runtime rt({.data_dir = "data"});
//   rt.add_view(counts);
//   if (auto st = rt.start(); !st) { ... }
//   rt.append({...}, [](derive::result<derive::append_outcome> r) { ... });
//
// Every method is thread-safe and never blocks on an actor: calls that need one
// take a callback, invoked exactly once on a runtime thread (it must not block;
// post to your own executor). Reads go straight to LMDB on the caller's thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <derive/append.hpp>
#include <derive/audit.hpp>
#include <derive/changelog.hpp>
#include <derive/erasure.hpp>
#include <derive/event.hpp>
#include <derive/metrics.hpp>
#include <derive/options.hpp>
#include <derive/query.hpp>
#include <derive/status.hpp>
#include <derive/subscription.hpp>
#include <derive/view_info.hpp>
#include <derive/view_snapshot.hpp>

namespace caf {
class actor_system;
}

namespace derive {

class view_def;       // <derive/view.hpp>

// What runtime::cutover and runtime::rollback did.
struct version_switch {
  uint32_t pinned = 0;    // the version asked for, served as soon as it is ready
  uint32_t serving = 0;   // the version served when the call returned
  bool switched = false;  // the call switched readers over
};
class processor_def;  // <derive/processor.hpp>

class runtime {
 public:
  explicit runtime(runtime_options options = {});
  ~runtime();  // stops if running
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  // --- setup (before start) ---
  // Errors at start(): a duplicate name, an unknown or cyclic upstream.
  void add_view(view_def def);
  // A processor (<derive/processor.hpp>): runs as a view of the same name
  // and appends what it emits exactly once per input.
  void add_processor(processor_def def);
  // An application check for events of `type`, run at append time before the
  // sequencer: a non-ok status (invalid_event naming the field) refuses the
  // whole request and nothing reaches the log.
  void add_validator(std::string type, std::function<status(const event_input&)> check);

  // Opens storage and starts every actor. Errors: io_error, invalid_parameter.
  status start();
  // Stops accepting appends (they fail with `unavailable`), wakes every
  // waiter with `unavailable`, stops the actors and closes storage.
  void stop();
  bool running() const;

  // --- writes ---
  // Checks the request (check_append) and the application's validators, then
  // appends through the sequencer (group commit). `done` runs once the events
  // are durable, or with the error.
  // Errors found before the sequencer (invalid_event, invalid_idempotency_key,
  // a validator's status, unavailable) run `done` on the caller's thread.
  void append(append_request request, std::function<void(result<append_outcome>)> done);
  // The same for a request already checked (the server's parsers make these):
  // only the application's validators run before the sequencer.
  void append(checked_append request, std::function<void(result<append_outcome>)> done);

  // --- erasure (docs/storage.md, "Erasure") ---
  // Forgets `subject`: its events keep offset, ts and type but lose key,
  // subject and data; every view is rebuilt from the redacted log and its
  // subscribers reset; when `done` runs no file under the data directory
  // holds the subject's bytes (both environments are compacted in place:
  // appends, view commits and reads wait meanwhile). `done` runs once with
  // the receipt appended as a `derive.erasure` event (zero offsets for an
  // unknown subject), or an error (invalid_parameter for an empty or too
  // long subject; unavailable when transactions (a client's snapshot) kept
  // the compaction waiting: the subject is erased, its bytes leave the files
  // at the next forget or start; unavailable when the runtime stops first: the request is
  // durable and resumes at the next start; not_supported in cluster mode,
  // whose stream cannot be erased). Requests queue behind the one running;
  // those waiting together share one rebuild.
  void forget(std::string subject, std::function<void(result<erasure_receipt>)> done);
  // Retention (runtime_options.retention, docs/storage.md "Retention"): the
  // eraser sweeps every retention_interval of the log clock; this queues a
  // sweep now. `done` runs once with what it redacted (the receipts are
  // `derive.retention` events), or an error (unavailable when stopping;
  // not_supported in cluster mode).
  void sweep_retention(std::function<void(result<retention_sweep>)> done);
  // nullopt when no rule is declared or not running.
  std::optional<retention_metrics> retention() const;

  // --- reads (caller's thread, no actor hop) ---
  uint64_t head() const;
  durability durability_mode() const;
  std::vector<view_info> views() const;
  result<view_info> view(const std::string& name) const;
  result<std::vector<event>> read_log(uint64_t from, size_t limit) const;
  // Errors: unknown_view.
  // A snapshot holds an LMDB read transaction: keep it short-lived (never
  // across a wait) and release it before stop().
  result<view_snapshot> snapshot(const std::string& view) const;
  // Runs a named query on one snapshot; adds "offset". Errors: unknown_view,
  // unknown_query, invalid_parameter (from the query).
  result<json> query(const std::string& view, const std::string& name,
                     const query_params& params) const;
  result<changelog_page> changes_since(const std::string& view, uint64_t from,
                                       size_t limit) const;
  result<std::vector<dead_letter>> dead_letters(const std::string& view) const;

  // Calls `done` once the view's offset is >= offset (ok), after `timeout`
  // (not_caught_up), or at shutdown (unavailable); errors: unknown_view. Woken
  // by the view's commits, never by polling. May run `done` on the caller's
  // thread when already caught up.
  void wait_for(const std::string& view, uint64_t offset, std::chrono::milliseconds timeout,
                std::function<void(status)> done);

  // --- subscriptions ---
  // Registers synchronously: every change committed after this call returns is
  // delivered. Returns the subscription's id. Errors: unknown_view.
  result<uint64_t> subscribe(subscription_filter filter, std::shared_ptr<change_sink> sink);
  void unsubscribe(uint64_t subscription);

  // --- supervision ---
  // Restarts a failed or stopped view: it resumes after its committed offset.
  status restart_view(const std::string& name);

  // --- view versions (docs/storage.md, "View versions") ---
  // Declare several versions of a view with add_view (view_def(name, N)):
  // the runtime serves the newest ready one and builds newer ones beside it.
  //
  // Empties declared version `version` of `view` (and the versions derived
  // from it) and builds it again from offset 0 beside the served version.
  // When `version` is the served one, a fresh copy of it (its next
  // generation, with the versions derived from it) is built from offset 0
  // beside it while it serves, then served in one step once ready (as any
  // version); the old copy's storage is then freed. Asked again while that
  // copy builds, the copy starts over. Errors: unknown_view, not_found (no
  // such declared version), invalid_parameter (a processor, or a served
  // version no longer declared).
  status rebuild(const std::string& view, uint32_t version);
  // Serves declared version `version` of `view` from now on: at once when it
  // is ready, else as soon as it is (the views derived from it follow
  // together). The choice holds until the next cutover or rollback, or a
  // restart. Errors: unknown_view, not_found.
  result<version_switch> cutover(const std::string& view, uint32_t version);
  // cutover() to the version served before the last cutover, if it is still
  // declared (so still running). Errors: unknown_view, invalid_parameter.
  result<version_switch> rollback(const std::string& view);
  // --- audits and scrubs (<derive/audit.hpp>, docs/operating.md) ---
  // Audits `view` on the caller's thread (it may take as long as rebuilding
  // the view) and records the result (view_info::audit). A mismatch is an
  // ok result with audit_result::ok false; the served view is never changed.
  // Errors: unknown_view, unavailable (not running, or stopped meanwhile),
  // invalid_parameter (a processor, whose code appends to the log).
  result<audit_result> audit(const std::string& view);
  // Starts an audit of `view` on the runtime's audit thread (queued behind
  // one under way). Errors: as audit(), found before it starts.
  status start_audit(const std::string& view);
  // The last audit result of `view` (nullopt: never audited).
  std::optional<audit_result> last_audit(const std::string& view) const;
  // Starts a scrub of the log on the audit thread; progress and result in
  // last_scrub(). Errors: unavailable.
  status start_scrub();
  scrub_result last_scrub() const;

  // --- for applications with actors of their own ---
  caf::actor_system& system();

  // --- observability ---
  // Cluster mode: the stream and this node's place in it; nullopt on the
  // embedded log or when not running.
  std::optional<cluster_metrics> cluster() const;
  runtime_metrics metrics() const;

  // The runtime's state (actors/runtime_state.hpp), for the framework's own
  // actor handles; not part of the application API.
  struct impl;
  impl& internals() { return *impl_; }

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace derive
