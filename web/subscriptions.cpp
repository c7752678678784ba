#include "web/subscriptions.hpp"

#include <algorithm>
#include <utility>

#include "web/errors.hpp"

namespace derive::web {
namespace {

// Changelog entries read per changes_since call while resuming.
constexpr size_t resume_page = 1000;
// Keys read per range call while taking a snapshot.
constexpr size_t snapshot_page = 1000;

}  // namespace

subscriptions::subscriptions(runtime& rt, const server_options& options, metrics& stats,
                             send_queue& out, sink_factory make_sink)
    : rt_(rt), options_(options), stats_(stats), out_(out), make_sink_(std::move(make_sink)) {}

subscriptions::~subscriptions() { clear(); }

// --- requests ---------------------------------------------------------------

void subscriptions::subscribe(const std::string& id, ws_subscribe op) {
  if (by_id_.count(id)) {
    return out_.push_message(encode_ws_error(
        id, ws_code::duplicate_id, "a subscription with id " + id + " is already active"));
  }
  if (subs_.size() >= options_.max_subscriptions) {
    return out_.push_message(encode_ws_error(id, ws_code::too_many_subscriptions,
                                             "this connection already has the maximum of " +
                                                 std::to_string(options_.max_subscriptions) +
                                                 " subscriptions"));
  }
  if (auto v = rt_.view(op.filter.view); !v) {
    return out_.push_message(encode_ws_error(id, v.error()));
  }
  auto sub = std::make_unique<subscription>();
  sub->id = id;
  sub->lane = ++next_lane_;
  sub->filter = std::move(op.filter);
  sub->from = op.from;
  out_.open_lane(sub->lane, id);
  waiting_.push_back(sub->lane);
  by_id_[id] = sub->lane;
  subs_[sub->lane] = std::move(sub);
  stats_.ws_subscriptions.fetch_add(1);
}

void subscriptions::unsubscribe(const std::string& id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) {
    return out_.push_message(encode_ws_error(id, ws_code::unknown_subscription,
                                             "there is no active subscription with id " + id));
  }
  remove(it->second);
  out_.push_message(encode_unsubscribed(id));
}

// --- hub deliveries -----------------------------------------------------------

void subscriptions::on_changes(uint64_t token, std::vector<change_ptr> items) {
  auto* sub = by_token(token);
  if (!sub) return;
  uint64_t floor = sub->floor;
  items.erase(std::remove_if(items.begin(), items.end(),
                             [floor](const change_ptr& c) { return c->offset <= floor; }),
              items.end());
  if (!items.empty()) push_changes(*sub, std::move(items));
}

void subscriptions::on_lost(uint64_t token) {
  if (auto* sub = by_token(token)) schedule_reset(*sub, 0);
}

subscriptions::subscription* subscriptions::by_token(uint64_t token) {
  auto it = by_token_.find(token);
  return it == by_token_.end() ? nullptr : subs_.at(it->second).get();
}

// --- starting -------------------------------------------------------------------

void subscriptions::start_waiting() {
  while (!out_.has_messages() && !waiting_.empty()) {
    uint64_t lane = waiting_.front();
    waiting_.pop_front();
    auto it = subs_.find(lane);
    if (it == subs_.end() || it->second->token != 0) continue;  // gone or started
    start(*it->second);
  }
}

// Subscribes to the hub FIRST (its deliveries reach on_changes after this
// function), then reads the snapshot or the changelog and sets the floor.
void subscriptions::start(subscription& sub) {
  uint64_t token = ++next_token_;
  auto hub = rt_.subscribe(sub.filter, make_sink_(token));
  if (!hub) return fail(sub, hub.error());
  sub.token = token;
  sub.hub_id = *hub;
  by_token_[token] = sub.lane;
  auto from = std::exchange(sub.from, std::nullopt);
  if (from && !sub.reset && resume(sub, *from)) return;
  if (from) sub.reset = true;  // `from` cannot be served
  send_snapshot(sub);
}

// Serves `from` through the view's changelog: "resumed", then the changes.
// False (nothing queued) when the changelog no longer reaches back to `from`
// or `from` is ahead of the view.
bool subscriptions::resume(subscription& sub, uint64_t from) {
  uint64_t cursor = from;
  bool first = true;
  for (;;) {
    auto page = rt_.changes_since(sub.filter.view, cursor, resume_page);
    if (!page || !page->served) {
      if (first) return false;
      schedule_reset(sub, 0);  // pruned while we were reading
      return true;
    }
    if (first) {
      if (from > page->view_offset) return false;
      out_.push_message(encode_resumed(sub.id, from));
      first = false;
    }
    std::vector<change_ptr> items;
    for (auto& entry : page->entries) {
      for (auto& c : entry.changes) {
        if (sub.filter.matches(c.key)) {
          items.push_back(make_change(entry.offset, std::move(c.key), std::move(c.value)));
        }
      }
      cursor = entry.offset;
    }
    sub.floor = std::max(cursor, page->view_offset);
    if (!items.empty()) {
      push_changes(sub, std::move(items));
      if (sub.token == 0) return true;  // reset while resuming
    }
    if (page->entries.size() < resume_page) return true;
  }
}

void subscriptions::send_snapshot(subscription& sub) {
  auto snap = rt_.snapshot(sub.filter.view);
  if (!snap) return fail(sub, snap.error());
  std::vector<key_value> items;
  if (sub.filter.key) {
    auto v = snap->get(*sub.filter.key);
    if (!v) return fail(sub, v.error());
    if (*v) items.push_back({*sub.filter.key, std::move(**v)});
  } else {
    std::string start;
    for (;;) {
      auto page = snap->range(sub.filter.prefix, start, snapshot_page);
      if (!page) return fail(sub, page.error());
      for (auto& kv : page->items) items.push_back(std::move(kv));
      if (!page->next) break;
      start = std::move(*page->next);
    }
  }
  uint64_t offset = snap->offset();
  snap = status{errc::unavailable, "released"};  // end the read transaction now
  for (auto& msg : encode_snapshot(sub.id, offset, items, sub.reset, options_.snapshot_chunk_items,
                                   options_.snapshot_chunk_bytes)) {
    out_.push_message(std::move(msg));
  }
  sub.floor = offset;
  sub.reset = false;
}

// --- falling behind ---------------------------------------------------------------

void subscriptions::push_changes(subscription& sub, std::vector<change_ptr> items) {
  auto res = out_.push_changes(sub.lane, std::move(items));
  stats_.ws_changes_conflated.fetch_add(res.conflated);
  for (auto [lane, n] : res.dropped) {
    if (auto it = subs_.find(lane); it != subs_.end()) schedule_reset(*it->second, n);
  }
}

// The subscription fell behind: drops what is queued for it, leaves the hub
// and waits for a reset snapshot.
void subscriptions::schedule_reset(subscription& sub, size_t dropped) {
  leave_hub(sub);
  dropped += out_.clear_lane(sub.lane);
  stats_.ws_changes_dropped.fetch_add(dropped);
  stats_.ws_resets.fetch_add(1);
  sub.reset = true;
  waiting_.push_back(sub.lane);
}

// --- ending ---------------------------------------------------------------------

void subscriptions::fail(subscription& sub, const status& st) {
  std::string id = sub.id;
  remove(sub.lane);
  out_.push_message(encode_ws_error(id, st));
}

void subscriptions::remove(uint64_t lane) {
  auto it = subs_.find(lane);
  if (it == subs_.end()) return;
  leave_hub(*it->second);
  out_.close_lane(lane);
  by_id_.erase(it->second->id);
  subs_.erase(it);
  stats_.ws_subscriptions.fetch_sub(1);
}

void subscriptions::clear() {
  while (!subs_.empty()) remove(subs_.begin()->first);
  waiting_.clear();
}

void subscriptions::leave_hub(subscription& sub) {
  if (sub.token == 0) return;
  rt_.unsubscribe(sub.hub_id);
  by_token_.erase(sub.token);
  sub.token = 0;
}

}  // namespace derive::web
