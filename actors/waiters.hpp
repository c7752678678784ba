#pragma once
// wait_for: callbacks waiting for a view to reach an offset.
//
// A waiter is registered under a mutex after re-checking the view's published
// offset, and the runner calls notify() after publishing a new offset, so no
// wake-up is lost; nothing polls. Deadlines are kept by one timer thread that
// sleeps until the earliest one. Each callback runs exactly once: with ok
// (from notify, on the runner thread), not_caught_up (timer thread) or
// unavailable (shutdown(), on the caller's thread). Callbacks must not block.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include <derive/status.hpp>

namespace derive {

class waiter_registry {
 public:
  using clock = std::chrono::steady_clock;
  using callback = std::function<void(status)>;

  // `offset_of(view)` returns the view's published offset (thread-safe).
  explicit waiter_registry(std::function<uint64_t(size_t view)> offset_of);
  ~waiter_registry();  // shutdown()
  waiter_registry(const waiter_registry&) = delete;
  waiter_registry& operator=(const waiter_registry&) = delete;

  // Calls `done` once view `view` has published an offset >= `offset`: at once
  // on this thread when it already has. After shutdown: unavailable at once.
  void wait(size_t view, uint64_t offset, clock::time_point deadline, callback done);
  // The runner of `view` published `offset`.
  void notify(size_t view, uint64_t offset);
  // Every waiter gets unavailable; later waits too. Joins the timer thread.
  void shutdown();
  size_t size() const;

 private:
  struct waiter {
    size_t view;
    uint64_t offset;
    clock::time_point deadline;
    callback done;
  };
  void run_timer();
  // REQUIRES: mu_ held. Removes waiter `id` and returns its callback.
  callback take(uint64_t id);

  std::function<uint64_t(size_t)> offset_of_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool closed_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, waiter> waiters_;                          // by id
  std::map<std::pair<size_t, uint64_t>, std::set<uint64_t>> by_offset_;  // (view, offset) -> ids
  std::set<std::pair<clock::time_point, uint64_t>> deadlines_;
  std::thread timer_;
};

}  // namespace derive
