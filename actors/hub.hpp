#pragma once
// The subscription hub: subscriptions by (view, key) and (view, prefix), and
// the actor that hands each committed batch on to the matching sinks.
//
// Registration is synchronous (subscription_registry::add, mutex-protected):
// every batch that reaches the hub after add() returns is delivered to the new
// subscription. The hub holds the mutex only to collect the matching items of
// a batch, and calls the sinks after releasing it. Delivery runs on the hub actor only, in commit order per view,
// never concurrently for one subscription; sinks must not block.
//
// Bounds (nothing here ever blocks a view runner):
//  - between runners and the hub: at most `max_backlog` batches in flight
//    (try_reserve). A runner that finds the hub full drops the batch and marks
//    every subscription of the view lost; each is told (on_lost) before its
//    next batch.
//  - between the hub and a subscriber: the sink's business. The web layer's
//    sinks queue (bounded, conflating); actor subscribers (handles.hpp) are
//    bounded by credits, see actor_sink below.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/fwd.hpp>

#include <derive/subscription.hpp>

namespace derive {

class subscription_registry {
 public:
  subscription_registry(size_t views, size_t max_backlog);
  // Room for views numbered below `views` (a rebuild adds view slots while
  // running); count() may run meanwhile.
  void grow(size_t views);

  // Registers a subscription to view number `view`; returns its id (> 0).
  uint64_t add(size_t view, subscription_filter filter, std::shared_ptr<change_sink> sink);
  // After this returns, the sink gets no new delivery (one already running on
  // the hub thread may still finish). False when `id` is unknown.
  bool remove(uint64_t id);
  void clear();
  // Subscriptions of `view` (cheap; runners skip publishing when 0).
  size_t count(size_t view) const;
  size_t total() const;

  // Runner side: claims room for one batch; false when the hub is full.
  bool try_reserve();
  // Claims room for one batch even when the hub is full (a cutover's
  // notice, which must not be dropped).
  void reserve() { backlog_.fetch_add(1); }
  // Runner side, when try_reserve failed: every subscription of `view` lost
  // (`overflow`: counted as a lost batch).
  void mark_lost(size_t view, bool overflow = true);

  // Hub side: delivers one committed batch of `view` and releases its room.
  void deliver(size_t view, const std::vector<change_ptr>& items);

  // Statistics.
  uint64_t delivered_batches() const { return delivered_.load(std::memory_order_relaxed); }
  uint64_t lost_batches() const { return lost_.load(std::memory_order_relaxed); }

 private:
  struct subscription {
    uint64_t id = 0;
    size_t view = 0;
    subscription_filter filter;
    std::shared_ptr<change_sink> sink;
    size_t slot = 0;  // index in its bucket (swap-and-pop removal)
    std::atomic<bool> active{true};
    std::atomic<bool> lost{false};
  };
  using sub_ptr = std::shared_ptr<subscription>;
  using bucket = std::vector<sub_ptr>;
  // Everything under mu_. Add and remove are O(1) amortized (hash maps,
  // swap-and-pop buckets). A changed key k is matched by one lookup in by_key
  // and one lookup in by_prefix per registered prefix length <= |k| (the
  // empty prefix, the whole view, is length 0): O(matches + distinct prefix
  // lengths), never O(all subscriptions).
  struct view_subs {
    std::unordered_map<std::string, bucket> by_key;
    std::unordered_map<std::string, bucket> by_prefix;
    std::map<size_t, size_t> prefix_lengths;  // length -> prefixes registered with it
    std::vector<sub_ptr> lost;                // marked lost, not told yet
  };

  static void insert(std::unordered_map<std::string, bucket>& map, const std::string& k,
                     const sub_ptr& sub);
  static void erase(std::unordered_map<std::string, bucket>& map, const std::string& k,
                    const sub_ptr& sub);

  size_t max_backlog_;
  mutable std::mutex mu_;
  std::vector<view_subs> views_;
  // Per view, read without the lock; grow() replaces the array (the old ones
  // are kept: a reader may still hold one).
  std::atomic<std::atomic<size_t>*> counts_{nullptr};
  std::vector<std::unique_ptr<std::atomic<size_t>[]>> count_arrays_;
  std::unordered_map<uint64_t, sub_ptr> by_id_;
  uint64_t next_id_ = 1;
  std::atomic<size_t> backlog_{0};
  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> lost_{0};
};

// Spawns the hub actor: (publish_atom, change_batch_msg) -> registry.deliver;
// (stop_atom, done_callback) quits after the batches queued before it.
caf::actor spawn_hub(caf::actor_system& sys, subscription_registry& registry);

// A change_sink that forwards to an actor as (changes_atom, change_batch) and
// (lost_atom, id) messages (handles.hpp), with at most `limit` batches not yet
// handled by the actor: beyond that, batches are dropped and the actor gets
// (lost_atom, id) as soon as it has room again.
std::shared_ptr<change_sink> make_actor_sink(caf::actor subscriber, size_t limit);

}  // namespace derive
