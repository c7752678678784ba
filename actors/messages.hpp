#pragma once
// Internal messages between the runtime's actors (local only, never
// serialized). Applications use actors/handles.hpp instead.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <caf/all.hpp>

#include <derive/subscription.hpp>

namespace derive {

using head_atom = caf::atom_constant<caf::atom("head")>;        // a source has new input
using work_atom = caf::atom_constant<caf::atom("work")>;        // a runner's next batch
using flush_atom = caf::atom_constant<caf::atom("flush")>;      // the sequencer's group
using stop_atom = caf::atom_constant<caf::atom("stop")>;        // finish and quit
using restart_atom = caf::atom_constant<caf::atom("restart")>;  // resume a failed view
using rebuild_atom = caf::atom_constant<caf::atom("rebuild")>;  // a version starts over at 0
using publish_atom = caf::atom_constant<caf::atom("publish")>;  // changes for the hub
using erase_atom = caf::atom_constant<caf::atom("erase")>;      // rebuild after an erasure
using run_atom = caf::atom_constant<caf::atom("run")>;          // run a callback on its thread

// A callback run by the receiving actor (on its thread).
struct done_callback {
  std::function<void()> fn;
};

// One committed batch of one view, on its way to the hub.
struct change_batch_msg {
  size_t view = 0;
  std::shared_ptr<const std::vector<change_ptr>> items;
};

}  // namespace derive

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(derive::done_callback)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(derive::change_batch_msg)
