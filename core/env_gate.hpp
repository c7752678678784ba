#pragma once
// The gate of one LMDB environment (core/environment.hpp): every transaction
// holds a pass of it, so that an online compaction can wait until none is
// open. Kept free of lmdb.h (environment.hpp includes it).

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace derive {

// Admits the transactions of one environment, and stops admitting them for
// an online compaction (environment::compact_online): close() waits until
// every admitted transaction has ended while new ones wait. A thread that
// holds a pass is admitted even while closed, since it may nest a
// transaction in one it holds (a view runner writes while its snapshot
// reads); close() then waits for both. Thread-safe.
class env_gate {
 public:
  // Takes a pass: waits while closed unless the calling thread holds one.
  void enter();
  // Returns a pass taken by the thread `holder`.
  void leave(std::thread::id holder);
  // Stops admitting; true once no pass is out. False when `timeout` passes
  // first: then it admits again.
  bool close(std::chrono::milliseconds timeout);
  // Admits again after close().
  void open();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  size_t out_ = 0;
  std::unordered_map<std::thread::id, size_t> holders_;
};

}  // namespace derive
