#include <derive/runtime.hpp>

#include "actors/audit.hpp"
#include "actors/runtime_state.hpp"

// runtime's audits and scrubs (actors/audit.hpp).

namespace derive {
namespace {

// The slot to audit, or why not.
result<view_slot*> auditable(runtime::impl& rt, const std::string& name) {
  auto* slot = rt.find(name);
  if (!slot) return no_such_view(name);
  if (!rt.running || !rt.audits) return not_running();
  if (rt.outboxes.count(slot->index()))
    return status{errc::invalid_parameter,
                  "view " + name + " is a processor, whose code appends to the log: "
                                   "processors are not audited"};
  return slot;
}

}  // namespace

result<audit_result> runtime::audit(const std::string& view) {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  auto slot = auditable(*impl_, view);
  if (!slot) return slot.error();
  auto r = run_audit(*impl_, **slot, impl_->audits_cancel);
  if (r) record_audit(**slot, *r);
  return r;
}

status runtime::start_audit(const std::string& view) {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  auto slot = auditable(*impl_, view);
  if (!slot) return slot.error();
  impl_->audits->enqueue_audit((*slot)->index());
  return status::ok();
}

std::optional<audit_result> runtime::last_audit(const std::string& view) const {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  auto* slot = impl_->find(view);
  if (!slot) return std::nullopt;
  return slot->audit();
}

status runtime::start_scrub() {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  if (!impl_->running || !impl_->audits) return not_running();
  {
    std::lock_guard<std::mutex> guard(impl_->scrub_mu);
    impl_->scrub = scrub_result{};
    impl_->scrub.running = true;
    impl_->scrub.head = impl_->log->head();
  }
  impl_->audits->enqueue_scrub();
  return status::ok();
}

scrub_result runtime::last_scrub() const {
  std::lock_guard<std::mutex> guard(impl_->scrub_mu);
  return impl_->scrub;
}

}  // namespace derive
