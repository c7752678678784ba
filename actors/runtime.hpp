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
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "actors/view.hpp"
#include "core/environment.hpp"
#include "core/log.hpp"
#include "core/status.hpp"
#include "core/view_store.hpp"

namespace caf {
class actor_system;
}

namespace derive {

struct runtime_options {
  std::string data_dir = "data";
  environment_options storage;
  log_options log;
  // CAF scheduler threads (0: CAF's default).
  unsigned worker_threads = 2;
  // A runner more than this many events behind works in large transactions.
  uint64_t catch_up_batch = 10'000;
  // Largest number of events per live commit.
  uint64_t live_batch = 256;
  // Subscription hub: batches a slow subscriber may have outstanding before
  // it is told it lost changes.
  size_t hub_buffer = 1024;
};

enum class view_status { running, catching_up, rebuilding, failed, stopped };
std::string_view to_string(view_status s);

struct view_info {
  std::string name;
  uint32_t version = 1;
  uint64_t offset = 0;
  uint64_t lag = 0;  // head - offset
  view_status status = view_status::stopped;
  std::string error;  // when failed: what failed, at which offset
  std::optional<uint64_t> failed_offset;
};

// A committed change as subscribers receive it; serialized once, shared by
// every subscriber that gets it.
struct published_change {
  uint64_t offset = 0;
  std::string key;
  std::optional<std::string> value;  // compact JSON; nullopt: deleted
  // {"offset":O,"key":"...","value":...} — the wire form of one item.
  std::shared_ptr<const std::string> wire;
};
using change_ptr = std::shared_ptr<const published_change>;

// What a subscription matches: one key, or every key with a prefix.
struct subscription_filter {
  std::string view;
  std::optional<std::string> key;  // set: exactly this key
  std::string prefix;              // otherwise: keys starting with this
  bool matches(std::string_view k) const;
};

// Receives the committed changes of one subscription. The hub calls it in
// commit order, never concurrently for one subscription, from a runtime
// thread. It must not block. A batch never splits the changes of one offset.
class change_sink {
 public:
  virtual ~change_sink() = default;
  virtual void on_changes(uint64_t subscription, std::vector<change_ptr> items) = 0;
  // Changes were dropped because the subscriber fell behind by more than the
  // hub's buffer: it must start over from a snapshot.
  virtual void on_lost(uint64_t subscription) = 0;
};

// Counters for /metrics: cheap to read, from any thread.
struct view_metrics {
  std::string name;
  uint32_t version = 1;
  uint64_t offset = 0;
  uint64_t lag = 0;
  view_status status = view_status::stopped;
  uint64_t applied = 0;  // inputs (events, or upstream offsets) applied since start
  uint64_t commits = 0;  // view_store commits since start
};

struct runtime_metrics {
  uint64_t head = 0;
  uint64_t append_requests = 0;  // requests answered by the sequencer (ok or error)
  uint64_t append_failures = 0;  // ... of which errors
  uint64_t appended_events = 0;
  uint64_t append_commits = 0;   // group commits (one LMDB transaction each)
  // Append latency, from runtime::append to the outcome, in microseconds.
  uint64_t append_latency_count = 0;
  uint64_t append_latency_sum_us = 0;
  // Cumulative histogram: (upper bound in microseconds, appends <= bound);
  // the last bound is UINT64_MAX (+Inf).
  std::vector<std::pair<uint64_t, uint64_t>> append_latency_buckets;
  uint64_t subscriptions = 0;
  uint64_t hub_batches = 0;  // committed batches handed on by the hub
  uint64_t hub_lost = 0;     // batches dropped because the hub was full
  std::vector<view_metrics> views;
};

class runtime {
 public:
  explicit runtime(runtime_options options = {});
  ~runtime();  // stops if running
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  // --- setup (before start) ---
  // Errors at start(): a duplicate name, an unknown or cyclic upstream.
  void add_view(view_def def);
  // An application check for events of `type`, run at append time before the
  // sequencer: a non-ok status (invalid_event naming the field) refuses the
  // whole request and nothing reaches the log.
  void add_validator(std::string type, std::function<status(const event_input&)> check);

  // Opens storage and starts every actor. Errors: io_error, invalid_parameter.
  status start();
  // Stops accepting appends (they fail with `unavailable`), wakes every
  // waiter with `unavailable`, stops the actors and closes storage.
  void stop();
  // Blocks until SIGINT or SIGTERM (or stop()), then stops.
  void run_until_signal();
  bool running() const;

  // --- writes ---
  // Validates with the application's validators, then appends through the
  // sequencer (group commit). `done` runs once the events are durable, or with
  // the error.
  // Errors found before the sequencer (invalid_event, invalid_idempotency_key,
  // a validator's status, unavailable) run `done` on the caller's thread.
  void append(append_request request, std::function<void(result<append_outcome>)> done);

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

  // --- for applications with actors of their own ---
  caf::actor_system& system();

  // --- observability ---
  runtime_metrics metrics() const;

  class impl;
  // For actors/ internals (handles.hpp); not part of the application API.
  impl& internals() { return *impl_; }

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace derive
