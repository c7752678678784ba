#include "web/subscriptions.hpp"

#include <algorithm>
#include <utility>

#include "web/errors.hpp"

namespace derive::web {
namespace {

// Changelog entries read per changes_since call while resuming.
constexpr size_t resume_page = 1000;

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
  // Read ahead at most one chunk: the connection holds the chunk being
  // written, this one, and its change lanes (bounded by the send queue).
  size_t ahead = std::min(options_.send_queue_bytes, options_.snapshot_chunk_bytes);
  for (;;) {
    if (sending_ != 0) {
      auto it = subs_.find(sending_);
      if (it == subs_.end() || !it->second->snapshot) {
        sending_ = 0;
        continue;
      }
      if (out_.message_bytes() >= ahead) return;  // continued when it drains
      send_chunk(*it->second);
      continue;
    }
    if (out_.has_messages() || waiting_.empty()) return;
    uint64_t lane = waiting_.front();
    waiting_.pop_front();
    auto it = subs_.find(lane);
    if (it == subs_.end() || it->second->token != 0) continue;  // gone or started
    start(*it->second);
  }
}

// Subscribes to the hub FIRST (its deliveries reach on_changes after this
// function), then reads the changelog or opens the snapshot and sets the
// floor.
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
  out_.hold_lane(sub.lane, true);
  if (!open_snapshot(sub)) return;
  sending_ = sub.lane;
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

// A snapshot interrupted (its transaction grew too old, or the subscription
// was reset while sending) continues from its next key when the view has not
// moved; otherwise it starts over at the newer offset with "reset": true. The
// offset never goes back: a snapshot is opened after the previous one.
bool subscriptions::open_snapshot(subscription& sub) {
  auto snap = rt_.snapshot(sub.filter.view);
  if (!snap) {
    fail(sub, snap.error());
    return false;
  }
  auto& c = sub.snapshot;
  uint64_t offset = snap->offset();
  if (!c || !c->started || c->offset != offset) {
    bool restarted = c && c->started;
    c = cursor{};  // (not emplace(): clang 14 rejects it for a nested struct with member initializers)
    c->offset = offset;
    c->reset = sub.reset || restarted;
  }
  c->snap.emplace(std::move(*snap));
  c->opened = std::chrono::steady_clock::now();
  sub.floor = offset;
  out_.trim_lane(sub.lane, offset);  // covered by this snapshot
  return true;
}

bool subscriptions::send_chunk(subscription& sub) {
  if (!sub.snapshot->snap ||
      std::chrono::steady_clock::now() - sub.snapshot->opened >= options_.snapshot_max_age) {
    sub.snapshot->snap.reset();  // release the old transaction before taking a new one
    if (!open_snapshot(sub)) return false;
  }
  auto& c = *sub.snapshot;
  auto& snap = *c.snap;
  std::vector<key_value> items;
  bool more = false;
  if (sub.filter.key) {
    auto v = snap.get(*sub.filter.key);
    if (!v) {
      fail(sub, v.error());
      return false;
    }
    if (*v) items.push_back({*sub.filter.key, std::move(**v)});
  } else {
    // Pages sized from the average item seen so far, so that a chunk of
    // large values does not read far past snapshot_chunk_bytes.
    size_t max_items = std::max<size_t>(options_.snapshot_chunk_items, 1);
    size_t max_bytes = std::max<size_t>(options_.snapshot_chunk_bytes, 1);
    size_t bytes = 0;
    for (;;) {
      size_t want = max_items - items.size();
      if (c.avg_item_bytes > 0) want = std::min(want, (max_bytes - bytes) / c.avg_item_bytes + 1);
      else want = std::min<size_t>(want, 16);
      auto page = snap.range(sub.filter.prefix, c.next, want);
      if (!page) {
        fail(sub, page.error());
        return false;
      }
      size_t page_bytes = 0;
      size_t used = 0;
      for (auto& kv : page->items) {
        size_t n = kv.key.size() + kv.value.size() + 24;
        if (!items.empty() && bytes + n > max_bytes) break;
        bytes += n;
        page_bytes += n;
        items.push_back(std::move(kv));
        ++used;
      }
      if (used > 0) c.avg_item_bytes = std::max<size_t>(page_bytes / used, 1);
      if (used < page->items.size()) {  // the chunk is full
        c.next = page->items[used].key;
        more = true;
        break;
      }
      if (!page->next) break;  // the end
      c.next = std::move(*page->next);
      if (items.size() >= max_items || bytes >= max_bytes) {
        more = true;
        break;
      }
    }
  }
  out_.push_message(encode_snapshot_chunk(sub.id, c.offset, items, c.reset, more));
  c.started = true;
  if (!more) end_snapshot(sub);
  return true;
}

void subscriptions::release_old_snapshot() {
  auto it = subs_.find(sending_);
  if (it == subs_.end() || !it->second->snapshot || !it->second->snapshot->snap) return;
  auto& c = *it->second->snapshot;
  if (std::chrono::steady_clock::now() - c.opened >= options_.snapshot_max_age) c.snap.reset();
}

// The last chunk is queued: the held changes follow it.
void subscriptions::end_snapshot(subscription& sub) {
  sub.snapshot.reset();  // ends the read transaction
  sub.reset = false;
  out_.hold_lane(sub.lane, false);
  if (sending_ == sub.lane) sending_ = 0;
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
  if (sub.snapshot) {
    // Interrupted: continued (same offset) or restarted by the next start.
    sub.snapshot->snap.reset();
    if (sending_ == sub.lane) sending_ = 0;
  }
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
  if (sending_ == lane) sending_ = 0;
  out_.close_lane(lane);
  by_id_.erase(it->second->id);
  subs_.erase(it);
  stats_.ws_subscriptions.fetch_sub(1);
}

void subscriptions::clear() {
  while (!subs_.empty()) remove(subs_.begin()->first);
  waiting_.clear();
  sending_ = 0;
}

void subscriptions::end_all(std::string_view code, std::string_view message) {
  while (!subs_.empty()) {
    std::string id = subs_.begin()->second->id;
    remove(subs_.begin()->first);
    out_.push_message(encode_ws_error(id, code, message));
  }
  waiting_.clear();
  sending_ = 0;
}

void subscriptions::leave_hub(subscription& sub) {
  if (sub.token == 0) return;
  rt_.unsubscribe(sub.hub_id);
  by_token_.erase(sub.token);
  sub.token = 0;
}

}  // namespace derive::web
