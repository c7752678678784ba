#include "web/send_queue.hpp"

#include <algorithm>
#include <unordered_set>

#include "web/ws_protocol.hpp"

namespace derive::web {

size_t out_frame::size() const {
  size_t n = 0;
  for_each_piece([&](std::string_view p) { n += p.size(); });
  return n;
}

void send_queue::push_message(std::string msg) {
  message_bytes_ += msg.size();
  messages_.push_back(std::move(msg));
}

void send_queue::open_lane(uint64_t lane, const std::string& id) {
  lanes_[lane].prefix = changes_prefix(id);
}

size_t send_queue::close_lane(uint64_t lane) {
  size_t dropped = clear_lane(lane);
  lanes_.erase(lane);
  return dropped;
}

size_t send_queue::clear_lane(uint64_t lane) {
  auto it = lanes_.find(lane);
  if (it == lanes_.end()) return 0;
  size_t n = it->second.items.size();
  drop(it->second);
  return n;
}

void send_queue::hold_lane(uint64_t lane, bool held) {
  if (auto it = lanes_.find(lane); it != lanes_.end()) it->second.held = held;
}

size_t send_queue::trim_lane(uint64_t lane_id, uint64_t floor) {
  auto it = lanes_.find(lane_id);
  if (it == lanes_.end()) return 0;
  auto& lane = it->second;
  auto keep = std::find_if(lane.items.begin(), lane.items.end(),
                           [floor](const change_ptr& c) { return c->offset > floor; });
  size_t n = static_cast<size_t>(keep - lane.items.begin());
  for (auto i = lane.items.begin(); i != keep; ++i) {
    lane.bytes -= cost(*i);
    change_bytes_ -= cost(*i);
  }
  lane.items.erase(lane.items.begin(), keep);
  return n;
}

void send_queue::clear() {
  for (auto& [id, lane] : lanes_) drop(lane);
  messages_.clear();
  message_bytes_ = 0;
}

size_t send_queue::lane_items(uint64_t lane) const {
  auto it = lanes_.find(lane);
  return it == lanes_.end() ? 0 : it->second.items.size();
}

void send_queue::drop(lane_state& lane) {
  change_bytes_ -= lane.bytes;
  lane.bytes = 0;
  lane.items.clear();
  lane.items.shrink_to_fit();
}

size_t send_queue::conflate(lane_state& lane) {
  // Keep, for each key, only its newest queued change; the kept items stay in
  // offset order.
  std::unordered_set<std::string_view> seen;
  std::vector<change_ptr> kept;
  kept.reserve(lane.items.size());
  for (auto it = lane.items.rbegin(); it != lane.items.rend(); ++it) {
    if (seen.insert((*it)->key).second) kept.push_back(*it);
  }
  size_t removed = lane.items.size() - kept.size();
  if (removed == 0) return 0;
  std::reverse(kept.begin(), kept.end());
  size_t bytes = 0;
  for (const auto& c : kept) bytes += cost(c);
  change_bytes_ -= lane.bytes - bytes;
  lane.bytes = bytes;
  lane.items = std::move(kept);
  return removed;
}

send_queue::push_result send_queue::push_changes(uint64_t lane_id, std::vector<change_ptr> items) {
  push_result result;
  auto it = lanes_.find(lane_id);
  if (it == lanes_.end() || items.empty()) return result;
  lane_state& lane = it->second;
  for (auto& c : items) {
    size_t n = cost(c);
    lane.bytes += n;
    change_bytes_ += n;
    lane.items.push_back(std::move(c));
  }
  if (change_bytes_ <= max_bytes_) return result;

  size_t before = change_bytes_;
  for (auto& [id, l] : lanes_) result.conflated += conflate(l);
  size_t freed = before - change_bytes_;
  if (change_bytes_ <= max_bytes_ && freed >= max_bytes_ / 8) return result;

  // Conflation is not enough: empty the largest lanes.
  while (change_bytes_ > max_bytes_ / 2) {
    auto largest = std::max_element(lanes_.begin(), lanes_.end(), [](auto& a, auto& b) {
      return a.second.bytes < b.second.bytes;
    });
    if (largest == lanes_.end() || largest->second.bytes == 0) break;
    result.dropped.emplace_back(largest->first, largest->second.items.size());
    drop(largest->second);
  }
  return result;
}

std::optional<out_frame> send_queue::pop() {
  if (!messages_.empty()) {
    out_frame f;
    f.head = std::move(messages_.front());
    messages_.pop_front();
    message_bytes_ -= f.head.size();
    return f;
  }
  if (change_bytes_ == 0) return std::nullopt;
  // Round robin: the first lane with changes after the last one served.
  auto pick = lanes_.upper_bound(last_served_);
  auto has_items = [](const auto& kv) { return !kv.second.held && !kv.second.items.empty(); };
  auto it = std::find_if(pick, lanes_.end(), has_items);
  if (it == lanes_.end()) it = std::find_if(lanes_.begin(), pick, has_items);
  if (it == lanes_.end() || !has_items(*it)) return std::nullopt;
  last_served_ = it->first;
  out_frame f;
  f.head = it->second.prefix;
  f.items = std::move(it->second.items);
  change_bytes_ -= it->second.bytes;
  it->second.bytes = 0;
  it->second.items = {};
  return f;
}

}  // namespace derive::web
