#include <derive/runtime.hpp>

#include <caf/all.hpp>

#include "actors/runtime_state.hpp"

// The runtime's writes: every append is checked once (check_append, or by the
// server's parsers), then by the application's validators, then sent to the
// sequencer.

namespace derive {

status runtime::impl::run_validators(const checked_append& request) const {
  if (validators.empty()) return status::ok();
  const auto& events = request.events();
  for (size_t i = 0; i < events.size(); ++i) {
    auto it = validators.find(events[i].type);
    if (it == validators.end()) continue;
    status s;
    try {
      s = it->second(events[i]);
    } catch (const std::exception& e) {
      s = status{errc::invalid_event, e.what()};
    }
    if (!s) {
      if (events.size() > 1) return {s.code(), "events[" + std::to_string(i) + "]: " + s.message()};
      return s;
    }
  }
  return status::ok();
}

void runtime::append(append_request request, std::function<void(result<append_outcome>)> done) {
  auto checked = check_append(std::move(request));
  if (!checked) return done(checked.error());
  append(std::move(*checked), std::move(done));
}

void runtime::append(checked_append request, std::function<void(result<append_outcome>)> done) {
  const auto& events = request.events();
  for (size_t i = 0; i < events.size(); ++i)
    if (events[i].type == erasure_event_type || events[i].type == retention_event_type)
      return done(status{errc::invalid_event,
                         (events.size() > 1 ? "events[" + std::to_string(i) + "].type" : "type") +
                             " '" + events[i].type +
                             "' is reserved for erasure and retention receipts; use another type"});
  impl_->submit(std::move(request), std::move(done));
}

void runtime::impl::submit_when_open(checked_append request,
                                     std::function<void(result<append_outcome>)> done,
                                     const std::atomic<bool>& stopping) {
  {
    std::shared_lock<std::shared_mutex> lock(append_mu);
    append_open.wait(lock, [&] { return accepting || stopping.load(); });
  }
  submit(std::move(request), std::move(done));
}

void runtime::impl::submit(checked_append request,
                           std::function<void(result<append_outcome>)> done) {
  if (auto s = run_validators(request); !s) return done(s);
  {
    std::shared_lock<std::shared_mutex> lock(append_mu);
    if (accepting) {
      caf::anon_send(sequencer, append_job{std::move(request), std::move(done)});
      return;
    }
  }
  done(status{errc::unavailable, "the runtime is shutting down"});
}


}  // namespace derive
