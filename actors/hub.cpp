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
    : max_backlog_(max_backlog == 0 ? 1 : max_backlog), views_(views) {
  for (auto& v : views_) v = std::make_shared<const view_subs>();
}

uint64_t subscription_registry::add(size_t view, subscription_filter filter,
                                    std::shared_ptr<change_sink> sink) {
  auto sub = std::make_shared<subscription>();
  sub->filter = std::move(filter);
  sub->sink = std::move(sink);
  std::lock_guard<std::mutex> lock(mu_);
  sub->id = next_id_++;
  auto next = std::make_shared<view_subs>(*views_[view]);
  if (sub->filter.key) next->by_key[*sub->filter.key].push_back(sub);
  else next->by_prefix.push_back(sub);
  ++next->size;
  views_[view] = std::move(next);
  by_id_.emplace(sub->id, std::make_pair(view, sub));
  return sub->id;
}

bool subscription_registry::remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  auto [view, sub] = it->second;
  by_id_.erase(it);
  sub->active = false;
  auto next = std::make_shared<view_subs>(*views_[view]);
  auto drop = [&](std::vector<sub_ptr>& subs) {
    subs.erase(std::remove(subs.begin(), subs.end(), sub), subs.end());
  };
  if (sub->filter.key) {
    auto k = next->by_key.find(*sub->filter.key);
    drop(k->second);
    if (k->second.empty()) next->by_key.erase(k);
  } else {
    drop(next->by_prefix);
  }
  --next->size;
  views_[view] = std::move(next);
  return true;
}

void subscription_registry::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, entry] : by_id_) entry.second->active = false;
  by_id_.clear();
  for (auto& v : views_) v = std::make_shared<const view_subs>();
}

std::shared_ptr<const subscription_registry::view_subs> subscription_registry::current(
    size_t view) const {
  std::lock_guard<std::mutex> lock(mu_);
  return views_[view];
}

size_t subscription_registry::count(size_t view) const { return current(view)->size; }

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

void subscription_registry::mark_lost(size_t view) {
  lost_.fetch_add(1, std::memory_order_relaxed);
  auto subs = current(view);
  for (auto& [key, list] : subs->by_key)
    for (auto& sub : list) sub->lost = true;
  for (auto& sub : subs->by_prefix) sub->lost = true;
}

void subscription_registry::deliver(size_t view, const std::vector<change_ptr>& items) {
  auto subs = current(view);
  // Matching items per subscription, in commit order.
  std::vector<std::pair<subscription*, std::vector<change_ptr>>> out;
  std::unordered_map<subscription*, size_t> slot;
  auto add = [&](subscription* sub, const change_ptr& item) {
    auto [it, fresh] = slot.emplace(sub, out.size());
    if (fresh) out.emplace_back(sub, std::vector<change_ptr>{});
    out[it->second].second.push_back(item);
  };
  for (const auto& item : items) {
    if (auto k = subs->by_key.find(item->key); k != subs->by_key.end())
      for (auto& sub : k->second) add(sub.get(), item);
    for (auto& sub : subs->by_prefix)
      if (sub->filter.matches(item->key)) add(sub.get(), item);
  }
  // Lost subscriptions without matching items still learn of the loss now.
  for (auto& sub : subs->by_prefix)
    if (sub->lost && !slot.count(sub.get())) out.emplace_back(sub.get(), std::vector<change_ptr>{});
  for (auto& [key, list] : subs->by_key)
    for (auto& sub : list)
      if (sub->lost && !slot.count(sub.get())) out.emplace_back(sub.get(), std::vector<change_ptr>{});
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
