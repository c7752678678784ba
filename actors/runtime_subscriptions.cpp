#include <derive/runtime.hpp>

#include "actors/runtime_state.hpp"

// Subscriptions register synchronously with the subscription registry: every
// change committed after subscribe() returns reaches the sink (hub.hpp).

namespace derive {

result<uint64_t> runtime::subscribe(subscription_filter filter, std::shared_ptr<change_sink> sink) {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  // A cutover switches and resets the old version's subscribers under
  // serving_mu: a subscription lands on the version served now.
  std::lock_guard<std::mutex> serving(impl_->serving_mu);
  auto* slot = impl_->find(filter.view);
  if (!slot) return no_such_view(filter.view);
  if (!impl_->running) return not_running();
  return impl_->subs->add(slot->index(), std::move(filter), std::move(sink));
}

void runtime::unsubscribe(uint64_t subscription) {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  if (impl_->subs) impl_->subs->remove(subscription);
}

}  // namespace derive
