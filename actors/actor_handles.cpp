#include <derive/actor_handles.hpp>

#include "actors/hub.hpp"
#include "actors/runtime_state.hpp"

namespace derive {

namespace {
const caf::atom_value category = caf::atom("derive");
}

sequencer_actor sequencer_of(runtime& rt) {
  auto& state = rt.internals();
  std::shared_lock<std::shared_mutex> lock(state.storage_mu);
  return caf::actor_cast<sequencer_actor>(state.sequencer);
}

result<uint64_t> subscribe_actor(runtime& rt, subscription_filter filter, caf::actor subscriber) {
  auto limit = rt.internals().options.hub_buffer;
  return rt.subscribe(std::move(filter), make_actor_sink(std::move(subscriber), limit));
}

result<uint64_t> subscribe_actor(runtime& rt, subscription_filter filter,
                                 change_subscriber_actor subscriber) {
  return subscribe_actor(rt, std::move(filter), caf::actor_cast<caf::actor>(subscriber));
}

caf::error to_error(const status& s) {
  return caf::error(static_cast<uint8_t>(s.code()), category, caf::make_message(s.message()));
}

status to_status(const caf::error& e) {
  if (!e) return status::ok();
  if (e.category() == category) {
    std::string message;
    if (e.context().match_elements<std::string>()) message = e.context().get_as<std::string>(0);
    return {static_cast<errc>(e.code()), std::move(message)};
  }
  return {errc::unavailable, "actor error: " + caf::to_string(e)};
}

}  // namespace derive
