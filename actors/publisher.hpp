#pragma once
// Publishing a view's commits. After each commit, on the view's runner
// thread, in this order: the new offset to the `wait_for` waiters, head_atom
// to the views derived from it, and — only if the view has subscribers — the
// batch's changes to the hub, each change serialized once to its wire form.
// Never blocks a runner: a full hub costs the view's subscribers a batch
// (they are marked lost), not the runner its progress.

#include <cstdint>
#include <vector>

#include <caf/actor.hpp>

#include <derive/changelog.hpp>
#include <derive/subscription.hpp>

namespace derive {

class subscription_registry;
class view_slot;
class waiter_registry;

// One change as every subscriber receives it: serialized once, shared.
change_ptr make_published_change(uint64_t offset, const key_change& change);

class publisher {
 public:
  // REQUIRES: every argument outlives the publisher; a consumer's runner
  // (view_slot::runner) is set before it is in any slot's `downstream`.
  publisher(subscription_registry& subs, waiter_registry& waiters, caf::actor hub);

  // On the runner thread of `slot`, after each commit that reached `offset`.
  // Waiters are told only of the served version's offsets (by view group).
  void published(view_slot& slot, uint64_t offset, const std::vector<offset_changes>& changes);

  // A cutover away from `old_slot`: every subscription of it is lost (and
  // told so now, by an empty batch through the hub), so that it starts over
  // with a reset snapshot of the version served now.
  void reset_subscribers(const view_slot& old_slot);
  // After `slot` was rebuilt in place (erasure): its waiters learn its offset
  // and every subscriber of it is reset the same way, now rather than at the
  // next commit. Any thread.
  void erasure_rebuilt(view_slot& slot);

 private:
  void publish_changes(view_slot& slot, const std::vector<offset_changes>& changes);

  subscription_registry& subs_;
  waiter_registry& waiters_;
  caf::actor hub_;
};

}  // namespace derive
