#pragma once
// What one WebSocket connection has to send and has not written yet
// (protocol.md, "Slow clients"; docs/protocol.md, "Send queue").
//
// Two kinds of entries:
// - control messages (answers, snapshot chunks, "resumed"), sent in FIFO
//   order before any change batch and never dropped;
// - one lane of pending changes per subscription. A lane is written as ONE
//   "changes" message holding everything queued for it, so the state rule
//   holds after conflation: the batch carries, for every key changed up to its
//   last offset, that key's newest value.
//
// The lanes together hold at most `max_bytes` (plus one batch). When a push
// passes the limit, every lane is conflated (an older queued change of a key
// is replaced by the newest one); when that frees less than an eighth of the
// limit or the total is still over it, the largest lanes are emptied until the
// total is at most half the limit, and the caller must send those
// subscriptions a reset snapshot. Each item is counted with its wire size plus
// a fixed overhead.
//
// Not thread-safe: owned by one session, used on its strand only.

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <derive/runtime.hpp>

namespace derive::web {

// One message to write: a control message (`head` only), or a changes batch
// laid out as head, wire0, ",", wire1, ..., "]}" over shared item buffers
// (the item bytes are never copied).
struct out_frame {
  std::string head;
  std::vector<change_ptr> items;

  bool is_changes() const { return !items.empty(); }
  size_t size() const;
  // Calls f(std::string_view) for each piece, in order.
  template <class F>
  void for_each_piece(F&& f) const {
    f(std::string_view(head));
    if (items.empty()) return;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) f(std::string_view(","));
      f(std::string_view(*items[i]->wire));
    }
    f(std::string_view("]}"));
  }
};

class send_queue {
 public:
  static constexpr size_t item_overhead = 48;

  explicit send_queue(size_t max_bytes) : max_bytes_(max_bytes) {}

  // --- control messages ---
  void push_message(std::string msg);
  bool has_messages() const { return !messages_.empty(); }
  size_t message_bytes() const { return message_bytes_; }

  // --- change lanes ---
  // Opens a lane for the subscription `lane` whose client id is `id`.
  void open_lane(uint64_t lane, const std::string& id);
  // Closes a lane; returns how many queued changes it dropped.
  size_t close_lane(uint64_t lane);
  // Empties a lane (it stays open); returns how many changes it dropped.
  size_t clear_lane(uint64_t lane);
  bool has_lane(uint64_t lane) const { return lanes_.count(lane) != 0; }
  // A held lane keeps queuing (and counting, conflating, dropping) but is not
  // popped: its subscription's snapshot is still being sent.
  void hold_lane(uint64_t lane, bool held);
  // Drops the lane's changes at offsets <= `floor` (covered by a newer
  // snapshot); returns how many.
  size_t trim_lane(uint64_t lane, uint64_t floor);
  // Drops everything (the connection ended): the byte counts return to 0.
  void clear();

  struct push_result {
    size_t conflated = 0;  // changes replaced by newer ones
    // Lanes emptied because conflation was not enough, with the number of
    // changes each lost. Their subscriptions need a reset snapshot.
    std::vector<std::pair<uint64_t, size_t>> dropped;
  };
  // Queues `items` (ascending offsets, whole offsets only) on `lane`; ignored
  // when the lane is not open.
  push_result push_changes(uint64_t lane, std::vector<change_ptr> items);
  size_t change_bytes() const { return change_bytes_; }
  size_t lane_items(uint64_t lane) const;

  bool empty() const { return messages_.empty() && change_bytes_ == 0; }
  // The next message: the oldest control message, else the whole queue of the
  // next lane that has changes (round robin over lanes). nullopt when empty.
  std::optional<out_frame> pop();

 private:
  struct lane_state {
    std::string prefix;  // {"op":"changes","id":...,"items":[
    std::vector<change_ptr> items;
    size_t bytes = 0;
    bool held = false;
  };
  static size_t cost(const change_ptr& c) { return c->wire->size() + item_overhead; }
  size_t conflate(lane_state& lane);
  void drop(lane_state& lane);

  size_t max_bytes_;
  // A list, not a deque: an empty deque still holds a 512-byte block, and
  // most connections have no message queued most of the time.
  std::list<std::string> messages_;
  size_t message_bytes_ = 0;
  std::map<uint64_t, lane_state> lanes_;
  size_t change_bytes_ = 0;
  uint64_t last_served_ = 0;  // round robin position
};

}  // namespace derive::web
