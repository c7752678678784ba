#pragma once
// The eraser: forgets subjects (docs/storage.md, "Erasure") on a thread of
// its own, one batch of requests at a time, so that a forget queues behind
// the one running and requests that arrive together share one rebuild.
//
// For a batch: (1) the requests are recorded durably in the log (before any
// other work), (2) the sequencer redacts the subjects' records and their
// idempotency keys, (3) when anything was redacted every view is rebuilt
// from the redacted log (reads of a rebuilding view answer `unavailable`,
// its subscribers are reset when it is done), (4) the log and view
// environments are compacted so no freed page keeps old bytes, (5) one
// receipt per subject is appended (idempotent: a resumed erasure replays
// it), (6) the requests are finished. A crash at any point leaves the
// request recorded: runtime::start resumes it.
//
// Where view versions plug in: rebuild_views() resets each view in place
// and rebuilds it; a side-by-side rebuild with an atomic cutover replaces
// that one function (the gate in view_slot::erasing then becomes unnecessary).

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <derive/erasure.hpp>
#include <derive/runtime.hpp>
#include <derive/status.hpp>

namespace derive {

class event_log;

class eraser {
 public:
  using callback = std::function<void(result<erasure_receipt>)>;

  // REQUIRES: the runtime's storage and actors are running; stop() before
  // they stop.
  explicit eraser(runtime::impl& rt);
  ~eraser();

  // Queues the erasure of `subject`; `done` (may be empty) runs once on the
  // eraser's thread with the receipt, or with an error (unavailable when
  // the runtime stops first).
  void request(std::string subject, callback done);
  // Finishes nothing more: the running step ends, queued requests are
  // answered `unavailable` (they stay recorded and resume at the next start).
  void stop();

 private:
  struct pending {
    std::string subject;
    callback done;
  };
  void run();
  status erase(std::vector<pending>& batch);
  status rebuild_views(std::vector<std::string>& rebuilt);
  status on_writer(std::function<status(event_log&)> fn);
  bool stopping() const;

  runtime::impl& rt_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<pending> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace derive
