#pragma once
// runtime::impl — shared by runtime.cpp and handles.cpp only.
//
// Locks: `lifecycle_mu_` serializes start() and stop(). `storage_mu_` guards
// the open storage and the actor handles: shared for every read and call,
// exclusive in start() and stop() only while they open or close storage —
// never while waiting for an actor, whose callbacks may call the runtime. `append_mu_` orders append() against stop(): appends send under a
// shared lock, stop() flips `accepting_` under the exclusive lock, so every
// append sent before is in the sequencer's mailbox ahead of its stop message.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "actors/hub.hpp"
#include <derive/runtime.hpp>
#include "actors/sequencer.hpp"
#include "actors/view_slot.hpp"
#include "actors/waiters.hpp"

namespace derive {

class runtime::impl {
 public:
  explicit impl(runtime_options options);
  ~impl();

  void add_view(view_def def);
  void add_validator(std::string type, std::function<status(const event_input&)> check);
  status start();
  void stop();
  bool running() const { return running_.load(); }

  void append(append_request request, std::function<void(result<append_outcome>)> done);
  void append(checked_append request, std::function<void(result<append_outcome>)> done);
  // The application's validators for each event's type.
  status run_validators(const checked_append& request) const;

  uint64_t head() const;
  durability durability_mode() const { return options_.storage.mode; }
  std::vector<view_info> views() const;
  result<view_info> view(const std::string& name) const;
  result<std::vector<event>> read_log(uint64_t from, size_t limit) const;
  result<view_snapshot> snapshot(const std::string& view) const;
  result<json> query(const std::string& view, const std::string& name,
                     const query_params& params) const;
  result<changelog_page> changes_since(const std::string& view, uint64_t from,
                                       size_t limit) const;
  result<std::vector<dead_letter>> dead_letters(const std::string& view) const;
  void wait_for(const std::string& view, uint64_t offset, std::chrono::milliseconds timeout,
                std::function<void(status)> done);
  result<uint64_t> subscribe(subscription_filter filter, std::shared_ptr<change_sink> sink);
  void unsubscribe(uint64_t subscription);
  status restart_view(const std::string& name);
  runtime_metrics metrics() const;

  caf::actor_system& system() { return *system_; }
  caf::actor sequencer() const;
  const runtime_options& options() const { return options_; }

 private:
  status check_views() const;
  std::vector<view_slot*> spawn_order() const;
  status open_storage();
  void spawn_actors();
  void close_storage();
  // REQUIRES: storage_mu_ held (shared). nullptr when unknown.
  view_slot* find(const std::string& name) const;
  // On a runner thread, after each commit of `slot`.
  void published(view_slot& slot, uint64_t offset, std::vector<offset_changes>& changes);
  void publish_changes(view_slot& slot, const std::vector<offset_changes>& changes);

  runtime_options options_;
  caf::actor_system_config config_;
  std::unique_ptr<caf::actor_system> system_;

  std::vector<std::unique_ptr<view_slot>> slots_;  // declaration order
  std::unordered_map<std::string, std::function<status(const event_input&)>> validators_;

  std::mutex lifecycle_mu_;
  mutable std::shared_mutex storage_mu_;
  std::atomic<bool> running_{false};
  std::unordered_map<std::string, view_slot*> by_name_;
  std::unique_ptr<environment> env_;
  std::unique_ptr<event_log> log_;
  std::unique_ptr<subscription_registry> subs_;
  std::unique_ptr<waiter_registry> waiters_;
  sequencer_counters counters_;
  caf::actor sequencer_;
  caf::actor hub_;
  std::vector<caf::actor> runners_;  // by slot index; written before the actors run

  std::shared_mutex append_mu_;
  bool accepting_ = false;

};

}  // namespace derive
