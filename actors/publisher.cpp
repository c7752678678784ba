#include "actors/publisher.hpp"

#include <memory>
#include <string>

#include <caf/all.hpp>

#include <derive/logging.hpp>

#include "actors/hub.hpp"
#include "actors/messages.hpp"
#include "actors/view_slot.hpp"
#include "actors/waiters.hpp"
#include "core/json_text.hpp"

namespace derive {
namespace {

constexpr std::string_view component = "publisher";

}  // namespace

change_ptr make_published_change(uint64_t offset, const key_change& change) {
  auto item = std::make_shared<published_change>();
  item->offset = offset;
  item->key = change.key;
  item->value = change.value;
  auto wire = std::make_shared<std::string>();
  append_change_item(*wire, offset, change.key, change.value);
  item->wire = std::move(wire);
  return item;
}

publisher::publisher(subscription_registry& subs, waiter_registry& waiters, caf::actor hub)
    : subs_(subs), waiters_(waiters), hub_(std::move(hub)) {}

void publisher::published(view_slot& slot, uint64_t offset,
                          const std::vector<offset_changes>& changes) {
  const bool erasing = slot.erasing.load(std::memory_order_acquire);
  if (!erasing && slot.serving.load()) waiters_.notify(slot.group, offset);
  for (auto* consumer : slot.downstream)
    caf::anon_send(consumer->runner, head_atom::value, offset);
  if (!erasing && !changes.empty() && subs_.count(slot.index()) > 0)
    publish_changes(slot, changes);
}

void publisher::erasure_rebuilt(view_slot& slot) {
  if (slot.serving.load()) waiters_.notify(slot.group, slot.offset());
  reset_subscribers(slot);
}

void publisher::reset_subscribers(const view_slot& old_slot) {
  if (subs_.count(old_slot.index()) == 0) return;
  subs_.mark_lost(old_slot.index(), false);
  subs_.reserve();
  caf::anon_send(hub_, publish_atom::value,
                 change_batch_msg{old_slot.index(),
                                  std::make_shared<const std::vector<change_ptr>>()});
}

void publisher::publish_changes(view_slot& slot, const std::vector<offset_changes>& changes) {
  if (!subs_.try_reserve()) {
    log_warn(component, "hub is full: subscribers of ", slot.name(), " lose a batch");
    subs_.mark_lost(slot.index());
    return;
  }
  auto items = std::make_shared<std::vector<change_ptr>>();
  for (const auto& entry : changes)
    for (const auto& c : entry.changes) items->push_back(make_published_change(entry.offset, c));
  caf::anon_send(hub_, publish_atom::value, change_batch_msg{slot.index(), std::move(items)});
}

}  // namespace derive
