#include "actors/validation.hpp"

#include "core/event.hpp"

namespace derive {

status validate_events(const append_request& request) {
  return validate_inputs(request.events);
}

status prepare_idempotency(append_request& request) {
  if (request.idempotency_key.empty()) return status::ok();
  if (auto s = validate_idempotency_key(request.idempotency_key); !s) return s;
  if (request.fingerprint.empty()) request.fingerprint = fingerprint_inputs(request.events);
  return status::ok();
}

}  // namespace derive
