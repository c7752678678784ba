#pragma once
// Typed handles for applications that write CAF actors of their own.
//
//   auto seq = derive::sequencer_of(rt);
//   self->request(seq, caf::infinite, derive::append_atom::value, request)
//       .then([](const derive::append_outcome& o) { ... },
//             [](caf::error& e) { auto st = derive::to_status(e); ... });
//
//   // Receive the changes of a view as messages:
//   derive::subscribe_actor(rt, {.view = "counts", .prefix = ""}, caf::actor_cast<caf::actor>(self));
//   ... [](derive::changes_atom, const derive::change_batch& b) { ... },
//       [](derive::lost_atom, uint64_t subscription) { /* re-read a snapshot */ }
//
// Reads need no actor: runtime::snapshot / query / changes_since are safe on
// any thread, including inside a handler (keep the snapshot short-lived).

#include <cstdint>
#include <memory>
#include <vector>

#include <caf/all.hpp>

#include <derive/runtime.hpp>

namespace derive {

using append_atom = caf::atom_constant<caf::atom("append")>;
using changes_atom = caf::atom_constant<caf::atom("changes")>;
using lost_atom = caf::atom_constant<caf::atom("lost")>;

// The changes of one commit that match one actor subscription. `credit` is
// released when the message is destroyed (after the receiver handled it):
// that is how the hub counts a subscriber's outstanding batches.
struct change_batch {
  uint64_t subscription = 0;
  std::vector<change_ptr> items;
  std::shared_ptr<void> credit;
};

// The sequencer as an application actor sees it. Requests are checked like
// runtime::append (event shape, the application's validators); errors arrive
// as caf::error (see to_status). Replies only after the events are durable.
using sequencer_actor =
    caf::typed_actor<caf::replies_to<append_atom, append_request>::with<append_outcome>>;

// What an actor subscribed with subscribe_actor must handle.
using change_subscriber_actor =
    caf::typed_actor<caf::reacts_to<changes_atom, change_batch>,
                     caf::reacts_to<lost_atom, uint64_t>>;

// The running sequencer; an invalid handle when the runtime is not running.
sequencer_actor sequencer_of(runtime& rt);

// Subscribes `subscriber` to the changes matching `filter`: it receives
// (changes_atom, change_batch) messages in commit order. When it has more than
// runtime_options::hub_buffer batches unhandled, further batches are dropped
// and, as soon as it has caught up, it receives (lost_atom, subscription)
// before the next batch: it must then re-read a snapshot. Unsubscribe with
// runtime::unsubscribe. Errors: unknown_view, unavailable.
result<uint64_t> subscribe_actor(runtime& rt, subscription_filter filter, caf::actor subscriber);
result<uint64_t> subscribe_actor(runtime& rt, subscription_filter filter,
                                 change_subscriber_actor subscriber);

// caf::error <-> status. Derive's errors travel in the category "derive" with
// the message as context; any other error becomes `unavailable`.
caf::error to_error(const status& s);
status to_status(const caf::error& e);

}  // namespace derive

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(derive::append_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(derive::append_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(derive::change_batch)
