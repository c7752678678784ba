#pragma once
// Server metrics, rendered in the Prometheus text exposition format at
// GET /metrics (docs/protocol.md, "Metrics"). Every member is thread-safe
// (atomics); sessions update them from any Asio thread.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace derive {
class runtime;
}

namespace derive::web {
class response_budget;  // web/limits.hpp
}

namespace derive::web {

class metrics {
 public:
  // One HTTP response sent with `status`.
  void record_http_response(unsigned status);

  // Gauges and counters updated by the sessions.
  std::atomic<int64_t> http_connections{0};
  std::atomic<int64_t> ws_connections{0};
  std::atomic<int64_t> ws_subscriptions{0};
  std::atomic<int64_t> ws_queued_bytes{0};  // queued, not yet written, all connections
  std::atomic<uint64_t> ws_messages_sent{0};
  std::atomic<uint64_t> ws_changes_conflated{0};
  std::atomic<uint64_t> ws_changes_dropped{0};
  std::atomic<uint64_t> ws_resets{0};       // reset snapshots scheduled
  std::atomic<uint64_t> ws_slow_closes{0};  // connections closed with 1008
  std::atomic<uint64_t> connections_refused{0};  // over a connection limit
  std::atomic<uint64_t> appends_limited{0};      // 429: rate limit or key quota
  std::atomic<uint64_t> responses_overloaded{0};  // 503 overloaded
  const response_budget* unsent_responses = nullptr;  // set by the server

  // The exposition text: the runtime's counters (appends, views, hub) from
  // runtime::metrics() and the server's own.
  std::string render(const runtime& rt) const;

 private:
  std::array<std::atomic<uint64_t>, 600> http_responses_{};  // by status code
};

}  // namespace derive::web
