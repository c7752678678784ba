#pragma once
// A processor's outbox (include/derive/processor.hpp): the runner runs the
// processor as a view (as_view) whose inputs queue what they emit here, and
// before each commit (runner_context::before_commit) flush() appends the
// queued outputs, one request per input keyed "proc/<name>/<version>/<N>",
// and waits until they are durable. So a processor never commits an input
// whose outputs are not in the log, and a re-run after a crash appends
// nothing twice (the keys replay).
//
// Thread-safety: every call but as_view() runs on the processor's runner
// thread (the view functions and before_commit).

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <derive/append.hpp>
#include <derive/processor.hpp>
#include <derive/view.hpp>

namespace derive {

// Sends one checked append to the sequencer; `done` runs once with its outcome.
using append_submit =
    std::function<void(checked_append, std::function<void(result<append_outcome>)>)>;

class processor_outbox : public std::enable_shared_from_this<processor_outbox> {
 public:
  explicit processor_outbox(processor_def def) : def_(std::move(def)) {}

  const processor_def& def() const { return def_; }

  // The view the runner runs: the processor's functions, emitting here.
  view_def as_view();

  // Appends the outputs of the inputs up to `new_offset` through `submit` and
  // waits for every outcome; drops whatever else is queued. An error: the
  // first failed append's (the caller must not commit).
  status flush(uint64_t new_offset, const append_submit& submit);

 private:
  struct output {
    uint64_t offset;
    std::vector<event_input> events;
  };
  // Runs one call of the processor's function for input `offset`.
  void run(uint64_t offset, view_txn& tx, const std::function<void(processor_txn&)>& fn);

  processor_def def_;
  std::vector<output> queued_;   // ascending offsets
  uint64_t current_ = 0;        // the input being applied (0: none)
};

}  // namespace derive
