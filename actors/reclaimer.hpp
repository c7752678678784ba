#pragma once
// Space reclamation at rest (docs/storage.md, "Space reclamation";
// runtime_options.reclaim): a low-priority thread that, every
// reclaim.check_every, looks at the log's and the views' environments and
// compacts one online (environment::compact_online) when its free pages
// exceed both thresholds and the runtime is quiet: no commit in either
// environment for reclaim.quiet and every running view caught up with its
// source. A compaction that cannot start (a transaction stayed open: a
// client's snapshot) is retried later, after a pause that doubles each time
// (up to 10 minutes). compact_online serializes compactions of an environment, so one
// never overlaps the eraser's (actors/eraser.hpp, step 7).

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "actors/runtime_state.hpp"

namespace derive {

class reclaimer {
 public:
  // Starts the thread. REQUIRES: storage open; `rt` outlives the reclaimer,
  // which is destroyed before storage closes.
  explicit reclaimer(runtime::impl& rt);
  // Stops and joins the thread (a compaction under way finishes first).
  ~reclaimer();

 private:
  void loop();
  // No commit for reclaim.quiet and every running view caught up.
  bool quiet() const;
  struct target {
    environment* env = nullptr;
    std::chrono::steady_clock::time_point retry_at{};  // after a failed compaction
    std::chrono::milliseconds backoff{0};
  };
  // Compacts `t.env` if its free pages exceed the thresholds.
  void reclaim(target& t);

  runtime::impl& rt_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool quit_ = false;
  target targets_[2];  // the views', the log's
  std::thread thread_;
};

}  // namespace derive
