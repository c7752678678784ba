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
  // REQUIRES: every argument outlives the publisher; `runners` (by slot
  // index) is filled before any runner publishes.
  publisher(subscription_registry& subs, waiter_registry& waiters, caf::actor hub,
            const std::vector<caf::actor>& runners);

  // On the runner thread of `slot`, after each commit that reached `offset`.
  void published(view_slot& slot, uint64_t offset, const std::vector<offset_changes>& changes);

  // After `slot` was rebuilt (erasure): its waiters learn its offset and every
  // subscriber of it is reset (on_lost: a new snapshot), now rather than at
  // the next commit. Any thread.
  void reset_subscribers(view_slot& slot);

 private:
  void publish_changes(view_slot& slot, const std::vector<offset_changes>& changes);

  subscription_registry& subs_;
  waiter_registry& waiters_;
  caf::actor hub_;
  const std::vector<caf::actor>& runners_;
};

}  // namespace derive
