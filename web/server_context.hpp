#pragma once
// What the sessions of one server share (no Beast types). The server owns one
// server_context; it outlives every session (sessions are destroyed in
// server::stop at the latest).

#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <derive/logging.hpp>
#include <derive/runtime.hpp>
#include "web/limits.hpp"
#include "web/access_rules.hpp"
#include "web/metrics.hpp"
#include "web/router.hpp"
#include <derive/web/server.hpp>

namespace derive::web {

class tls_store;  // web/tls.hpp

// Lets runtime threads post to an io_context of the server (a lane's, see
// io_lane in web/sessions.hpp) only while it exists, and hands their work
// over in bursts: a lane's completion inbox. A runtime thread answering a
// group of requests (the sequencer acknowledging a commit, the hub publishing
// a batch) queues one function per session; only the first of a burst posts
// to the io_context (one wake-up of an Asio thread per burst, not per
// request), and that handler runs the whole burst, in order. Shared with
// every callback handed to the runtime (which may run after the server is
// gone); closed by server::stop before the io_context is destroyed.
class post_gate : public std::enable_shared_from_this<post_gate> {
 public:
  // Queues `fn` unless the gate is closed; returns whether it was queued. When
  // the queue was empty, calls schedule(drain) under the gate's lock, where
  // `drain` (a callable without arguments) runs everything queued by then:
  // schedule posts it to the io_context. Thread-safe.
  template <class Schedule>
  bool queue(std::function<void()> fn, Schedule&& schedule) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!open_) return false;
    queued_.push_back(std::move(fn));
    if (!scheduled_) {
      scheduled_ = true;
      schedule([gate = shared_from_this()] { gate->drain(); });
    }
    return true;
  }
  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }

 private:
  // On the lane's Asio thread: runs what is queued. What arrives meanwhile
  // schedules another drain, which runs after this one.
  void drain() {
    std::vector<std::function<void()>> burst;
    {
      std::lock_guard<std::mutex> lock(mu_);
      burst.swap(queued_);
      queued_.swap(spare_);  // an empty vector with the capacity of an earlier burst
      scheduled_ = false;
    }
    // A function that throws is logged and the burst goes on (as run_loop
    // does for a handler of its own): the others are other sessions'.
    for (auto& fn : burst) {
      try {
        fn();
      } catch (const std::exception& e) {
        log_error("web", "a handler threw: ", e.what());
      }
    }
    burst.clear();
    std::lock_guard<std::mutex> lock(mu_);
    if (spare_.capacity() < burst.capacity()) spare_.swap(burst);
  }

  std::mutex mu_;
  bool open_ = true;
  bool scheduled_ = false;
  std::vector<std::function<void()>> queued_;
  std::vector<std::function<void()>> spare_;
};

// A connection the server can ask to shut down.
class session_base {
 public:
  virtual ~session_base() = default;
  // Thread-safe: posts the shutdown to the session's strand. An HTTP session
  // answers a request still waiting for the runtime with 503 and closes; a
  // WebSocket session closes with 1001.
  virtual void shutdown() = 0;
  // Called by the server's ticker once per tick (session_registry::tick_all,
  // any thread): a session with deadlines (WebSocket: pings, stalled writes,
  // the closing handshake) posts its check to its strand. One timer per
  // server, not one per connection: an idle connection holds no timer.
  virtual void tick() {}
};

// The open sessions. Holds them strongly, so that a session waiting for the
// runtime (with no socket operation pending) stays alive; a session removes
// itself when its connection ends.
class session_registry {
 public:
  void add(std::shared_ptr<session_base> s) {
    std::lock_guard<std::mutex> lock(mu_);
    auto* key = s.get();
    sessions_.emplace(key, std::move(s));
  }
  void remove(session_base* s) {
    std::shared_ptr<session_base> keep;  // destroyed outside the lock
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(s);
    if (it == sessions_.end()) return;
    keep = std::move(it->second);
    sessions_.erase(it);
    if (sessions_.empty()) empty_.notify_all();
  }
  void shutdown_all() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [p, s] : sessions_) s->shutdown();
  }
  void tick_all() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [p, s] : sessions_) s->tick();
  }
  // Waits until every session has ended or `timeout` passed.
  template <class Duration>
  void wait_empty(Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    empty_.wait_for(lock, timeout, [&] { return sessions_.empty(); });
  }
  // Drops every session (after the io threads are joined).
  void clear() {
    std::unordered_map<session_base*, std::shared_ptr<session_base>> old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      old.swap(sessions_);
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable empty_;
  std::unordered_map<session_base*, std::shared_ptr<session_base>> sessions_;
};

struct server_context {
  server_context(runtime& r, server_options o)
      : rt(r),
        options(std::move(o)),
        routes(r, options, stats, auth),
        connections(effective_max_connections(options.max_connections),
                    options.max_connections_per_address),
        unsent_responses(options.max_unsent_response_bytes) {
    stats.unsent_responses = &unsent_responses;
  }

  runtime& rt;
  const server_options options;
  metrics stats;
  // Set by server::start from options.auth; null: no authentication.
  std::shared_ptr<const authorizer> auth;
  router routes;
  session_registry sessions;
  connection_limits connections;
  response_budget unsent_responses;
  // The TLS context of new connections; null: TLS off.
  std::shared_ptr<tls_store> tls;
  // Set by server::stop before it asks the sessions to finish: connections
  // accepted from then on are closed at once.
  std::atomic<bool> stopping{false};
};

}  // namespace derive::web
