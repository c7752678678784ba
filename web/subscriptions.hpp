#pragma once
// The subscriptions of one WebSocket connection (protocol.md, "subscribe",
// "unsubscribe", "Slow clients"): the state machine from subscribe to
// unsubscribe, without the transport. It queues what the client must receive
// on the connection's send_queue; the session writes that queue out and calls
// start_waiting() whenever the socket is free.
//
// A subscription waits until the queue holds no control message, then starts:
// it subscribes to the runtime's hub FIRST and then reads one snapshot (or the
// view's changelog after `from`), so whatever the hub delivers at offsets <=
// what was read (its floor) is dropped as already covered, and the rest
// follows. Nothing is lost or doubled and no offset goes backwards. When the
// hub reports lost changes, or the queue drops the subscription's lane, it
// leaves the hub and waits again, for a snapshot with "reset": true.
//
// Not thread-safe: used on one session's strand (or one test thread).

#include <cstddef>
#include <cstdint>
#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <derive/runtime.hpp>
#include <derive/web/server.hpp>
#include "web/metrics.hpp"
#include "web/send_queue.hpp"
#include "web/ws_protocol.hpp"

namespace derive::web {

class subscriptions {
 public:
  // Makes the sink of a new hub subscription. The sink must hand what it
  // receives back to on_changes / on_lost with `token`, in the order received.
  using sink_factory = std::function<std::shared_ptr<change_sink>(uint64_t token)>;

  // REQUIRES: rt, options, stats and out outlive this object.
  subscriptions(runtime& rt, const server_options& options, metrics& stats, send_queue& out,
                sink_factory make_sink);
  ~subscriptions();  // clear()
  subscriptions(const subscriptions&) = delete;
  subscriptions& operator=(const subscriptions&) = delete;

  // A subscribe request. Queues the error (duplicate_id,
  // too_many_subscriptions, unknown_view), or opens the subscription, which
  // waits for start_waiting().
  void subscribe(const std::string& id, ws_subscribe op);
  // An unsubscribe request: queues "unsubscribed", or unknown_subscription.
  // Queued changes of the subscription are dropped.
  void unsubscribe(const std::string& id);

  // What the sink of hub subscription `token` received. Deliveries for a hub
  // subscription that was replaced or removed are ignored.
  void on_changes(uint64_t token, std::vector<change_ptr> items);
  void on_lost(uint64_t token);

  // Called whenever the socket is free. Continues the snapshot being sent
  // while the queue holds less than a chunk of control messages; else, while
  // the queue holds no control message, starts the next subscription waiting
  // for its first or reset snapshot. One snapshot is sent at a time, a chunk
  // ahead of the socket at most, and answers go before snapshots. Changes of
  // a subscription whose snapshot is being sent stay queued (held) until its
  // last chunk.
  void start_waiting();

  // Ends the read transaction of the snapshot being sent when it is older
  // than snapshot_max_age (the client is not reading); the next chunk opens
  // a new one. Called by the session's timer.
  void release_old_snapshot();

  // Leaves the hub and drops every subscription (the connection closes).
  void clear();
  // Ends every subscription with an error message {"op":"error","id":<its
  // id>,"code":code,"message":message}; nothing more is sent for them.
  void end_all(std::string_view code, std::string_view message);
  size_t size() const { return subs_.size(); }

 private:
  // A snapshot being sent: one read transaction, read a chunk at a time as
  // the connection drains (never more than a chunk ahead of the socket).
  struct cursor {
    std::optional<view_snapshot> snap;  // the open read transaction
    std::chrono::steady_clock::time_point opened;
    uint64_t offset = 0;
    bool reset = false;    // the messages carry "reset": true
    bool started = false;  // a message of this snapshot was queued
    std::string next;      // the first key not sent yet
    size_t avg_item_bytes = 0;
  };

  struct subscription {
    std::string id;
    uint64_t lane = 0;  // the send_queue lane, stable for the subscription's life
    subscription_filter filter;
    std::optional<uint64_t> from;  // the resume request, used at the first start only
    bool reset = false;            // the next snapshot carries "reset": true
    uint64_t token = 0;            // the current hub subscription (0: none)
    uint64_t hub_id = 0;
    uint64_t floor = 0;  // changes at offsets <= floor are already covered
    std::optional<cursor> snapshot;  // set while a snapshot is being sent
  };

  void start(subscription& sub);
  bool resume(subscription& sub, uint64_t from);
  // Opens (or reopens) the snapshot's read transaction; false on failure
  // (the subscription was failed).
  bool open_snapshot(subscription& sub);
  // Queues the next chunk of the snapshot being sent; false when the
  // subscription failed.
  bool send_chunk(subscription& sub);
  void end_snapshot(subscription& sub);
  void push_changes(subscription& sub, std::vector<change_ptr> items);
  void schedule_reset(subscription& sub, size_t dropped);
  void fail(subscription& sub, const status& st);
  void remove(uint64_t lane);
  void leave_hub(subscription& sub);
  subscription* by_token(uint64_t token);

  runtime& rt_;
  const server_options& options_;
  metrics& stats_;
  send_queue& out_;
  sink_factory make_sink_;

  std::map<uint64_t, std::unique_ptr<subscription>> subs_;  // by lane
  // Maps, not hash maps: no bucket array per connection (most have one
  // subscription or none).
  std::map<std::string, uint64_t, std::less<>> by_id_;  // client id -> lane
  std::map<uint64_t, uint64_t> by_token_;               // hub token -> lane
  std::list<uint64_t> waiting_;  // lanes awaiting a snapshot (a list: empty costs nothing)
  uint64_t sending_ = 0;  // the lane whose snapshot is being sent (0: none)
  uint64_t next_lane_ = 0;
  uint64_t next_token_ = 0;
};

}  // namespace derive::web
