#pragma once
// Space reclamation at rest (docs/storage.md, "Space reclamation";
// runtime_options.reclaim): a low-priority thread that, every
// reclaim.check_every, looks at the log's and the views' environments and
// compacts one online (environment::compact_online) when its free pages
// exceed both thresholds and the runtime is quiet: no commit in either
// environment for reclaim.quiet and every running view caught up with its
// source. compact_online serializes compactions of an environment, so one
// never overlaps the eraser's (actors/eraser.hpp, step 7).

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
  // Compacts `env` if its free pages exceed the thresholds.
  void reclaim(environment& env);

  runtime::impl& rt_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace derive
