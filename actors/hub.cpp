#include "actors/hub.hpp"

#include <algorithm>
#include <utility>

#include <caf/all.hpp>

#include <derive/actor_handles.hpp>
#include <derive/logging.hpp>
#include "actors/messages.hpp"

namespace derive {

bool subscription_filter::matches(std::string_view k) const {
  if (key) return k == *key;
  return k.substr(0, prefix.size()) == prefix;
}

namespace {
constexpr std::string_view component = "hub";
}

subscription_registry::subscription_registry(size_t views, size_t max_backlog)
    : max_backlog_(max_backlog == 0 ? 1 : max_backlog),
      views_(views) {
  count_arrays_.emplace_back(new std::atomic<size_t>[views]);
  for (size_t i = 0; i < views; ++i) count_arrays_.back()[i] = 0;
  counts_ = count_arrays_.back().get();
}

void subscription_registry::grow(size_t views) {
  std::lock_guard<std::mutex> lock(mu_);
  if (views <= views_.size()) return;
  std::unique_ptr<std::atomic<size_t>[]> counts(new std::atomic<size_t>[views]);
  for (size_t i = 0; i < views; ++i) counts[i] = i < views_.size() ? counts_.load()[i].load() : 0;
  views_.resize(views);
  counts_ = counts.get();
  count_arrays_.push_back(std::move(counts));
}

void subscription_registry::insert(std::unordered_map<std::string, bucket>& map,
                                   const std::string& k, const sub_ptr& sub) {
  auto& b = map[k];
  sub->slot = b.size();
  b.push_back(sub);
}

void subscription_registry::erase(std::unordered_map<std::string, bucket>& map,
                                  const std::string& k, const sub_ptr& sub) {
  auto it = map.find(k);
  if (it == map.end()) return;
  auto& b = it->second;
  size_t i = sub->slot;
  if (i >= b.size() || b[i] != sub) return;
  if (i + 1 != b.size()) {
    b[i] = std::move(b.back());
    b[i]->slot = i;
  }
  b.pop_back();
  if (b.empty()) map.erase(it);
}

uint64_t subscription_registry::add(size_t view, subscription_filter filter,
                                    std::shared_ptr<change_sink> sink) {
  auto sub = std::make_shared<subscription>();
  sub->view = view;
  sub->filter = std::move(filter);
  sub->sink = std::move(sink);
  std::lock_guard<std::mutex> lock(mu_);
  sub->id = next_id_++;
  auto& v = views_[view];
  if (sub->filter.key) {
    insert(v.by_key, *sub->filter.key, sub);
  } else {
    if (!v.by_prefix.count(sub->filter.prefix)) ++v.prefix_lengths[sub->filter.prefix.size()];
    insert(v.by_prefix, sub->filter.prefix, sub);
  }
  by_id_.emplace(sub->id, sub);
  counts_.load()[view].fetch_add(1);
  return sub->id;
}

bool subscription_registry::remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  sub_ptr sub = std::move(it->second);
  by_id_.erase(it);
  sub->active = false;
  auto& v = views_[sub->view];
  if (sub->filter.key) {
    erase(v.by_key, *sub->filter.key, sub);
  } else {
    erase(v.by_prefix, sub->filter.prefix, sub);
    if (!v.by_prefix.count(sub->filter.prefix)) {
      auto n = v.prefix_lengths.find(sub->filter.prefix.size());
      if (n != v.prefix_lengths.end() && --n->second == 0) v.prefix_lengths.erase(n);
    }
  }
  counts_.load()[sub->view].fetch_sub(1);
  return true;
}

void subscription_registry::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, sub] : by_id_) sub->active = false;
  by_id_.clear();
  for (size_t i = 0; i < views_.size(); ++i) {
    views_[i] = view_subs{};
    counts_.load()[i] = 0;
  }
}

size_t subscription_registry::count(size_t view) const {
  return counts_.load()[view].load();  // seq_cst: ordered with add() like the mutex was
}

size_t subscription_registry::total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_id_.size();
}

bool subscription_registry::try_reserve() {
  size_t n = backlog_.load(std::memory_order_relaxed);
  do {
    if (n >= max_backlog_) return false;
  } while (!backlog_.compare_exchange_weak(n, n + 1));
  return true;
}

// O(subscriptions of the view), but only when the hub overflowed: each of
// them must be told.
void subscription_registry::mark_lost(size_t view, bool overflow) {
  if (overflow) lost_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  auto& v = views_[view];
  auto mark = [&](const sub_ptr& sub) {
    if (!sub->lost.exchange(true)) v.lost.push_back(sub);
  };
  for (auto& [key, b] : v.by_key)
    for (auto& sub : b) mark(sub);
  for (auto& [prefix, b] : v.by_prefix)
    for (auto& sub : b) mark(sub);
}

void subscription_registry::deliver(size_t view, const std::vector<change_ptr>& items) {
  // Matching items per subscription, in commit order; collected under the
  // lock (hash lookups only), handed to the sinks after it.
  std::vector<std::pair<sub_ptr, std::vector<change_ptr>>> out;
  {
    std::unordered_map<subscription*, size_t> slot;
    auto add = [&](const sub_ptr& sub, const change_ptr* item) {
      auto [it, fresh] = slot.emplace(sub.get(), out.size());
      if (fresh) out.emplace_back(sub, std::vector<change_ptr>{});
      if (item) out[it->second].second.push_back(*item);
    };
    std::lock_guard<std::mutex> lock(mu_);
    auto& v = views_[view];
    if (!v.by_key.empty() || !v.by_prefix.empty()) {
      for (const auto& item : items) {
        const std::string& k = item->key;
        if (auto b = v.by_key.find(k); b != v.by_key.end())
          for (auto& sub : b->second) add(sub, &item);
        for (auto [len, n] : v.prefix_lengths) {
          if (len > k.size()) break;
          // The lookup key is a copy; fine for the short keys of an index.
          if (auto b = v.by_prefix.find(k.substr(0, len)); b != v.by_prefix.end())
            for (auto& sub : b->second) add(sub, &item);
        }
      }
    }
    // Lost subscriptions without matching items still learn of the loss now.
    for (auto& sub : v.lost)
      if (sub->active) add(sub, nullptr);
    v.lost.clear();
  }
  for (auto& [sub, matched] : out) {
    if (!sub->active) continue;
    try {
      if (sub->lost.exchange(false)) sub->sink->on_lost(sub->id);
      if (!matched.empty()) sub->sink->on_changes(sub->id, std::move(matched));
    } catch (const std::exception& e) {
      log_error(component, "subscription ", sub->id, ": sink threw: ", e.what());
    } catch (...) {
      log_error(component, "subscription ", sub->id, ": sink threw");
    }
  }
  delivered_.fetch_add(1, std::memory_order_relaxed);
  backlog_.fetch_sub(1, std::memory_order_acq_rel);
}

namespace {

caf::behavior hub(caf::event_based_actor* self, subscription_registry* registry) {
  return {
      [=](publish_atom, const change_batch_msg& batch) {
        registry->deliver(batch.view, *batch.items);
      },
      [=](stop_atom, const done_callback& done) {
        if (done.fn) done.fn();
        self->quit();
      },
  };
}

// Flow control between the hub and one subscribing actor. Decisions are made
// under `mu`; messages are sent after unlocking (a failed send destroys the
// message at once, which releases its credit and takes `mu` again).
struct actor_flow {
  std::mutex mu;
  caf::actor dest;
  size_t limit = 1;
  size_t outstanding = 0;
  bool lost = false;
  uint64_t id = 0;

  void send_lost() { caf::anon_send(dest, lost_atom::value, id); }

  // Called when the actor is done with a batch (its message is destroyed).
  void release() {
    bool notify = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      --outstanding;
      if (lost && outstanding < limit) {
        lost = false;
        notify = true;
      }
    }
    if (notify) send_lost();
  }
};

class actor_sink final : public change_sink {
 public:
  actor_sink(caf::actor dest, size_t limit) : flow_(std::make_shared<actor_flow>()) {
    flow_->dest = std::move(dest);
    flow_->limit = limit == 0 ? 1 : limit;
  }

  void on_changes(uint64_t subscription, std::vector<change_ptr> items) override {
    bool notify = false;
    {
      std::lock_guard<std::mutex> lock(flow_->mu);
      flow_->id = subscription;
      if (flow_->outstanding >= flow_->limit) {
        flow_->lost = true;
        return;
      }
      notify = std::exchange(flow_->lost, false);
      ++flow_->outstanding;
    }
    if (notify) flow_->send_lost();
    std::weak_ptr<actor_flow> weak = flow_;
    std::shared_ptr<void> credit(nullptr, [weak](void*) {
      if (auto flow = weak.lock()) flow->release();
    });
    caf::anon_send(flow_->dest, changes_atom::value,
                   change_batch{subscription, std::move(items), std::move(credit)});
  }

  void on_lost(uint64_t subscription) override {
    bool notify = false;
    {
      std::lock_guard<std::mutex> lock(flow_->mu);
      flow_->id = subscription;
      flow_->lost = true;
      if (flow_->outstanding < flow_->limit) {
        flow_->lost = false;
        notify = true;
      }
    }
    if (notify) flow_->send_lost();
  }

 private:
  std::shared_ptr<actor_flow> flow_;
};

}  // namespace

caf::actor spawn_hub(caf::actor_system& sys, subscription_registry& registry) {
  return sys.spawn(hub, &registry);
}

std::shared_ptr<change_sink> make_actor_sink(caf::actor subscriber, size_t limit) {
  return std::make_shared<actor_sink>(std::move(subscriber), limit);
}

}  // namespace derive
