#include "core/append_check.hpp"

#include <nlohmann/json.hpp>

#include "core/event.hpp"
#include "core/json_text.hpp"

namespace derive {

checked_append checked_append_access::make(std::vector<event_input> events,
                                           std::string idempotency_key,
                                           std::string fingerprint) {
  checked_append out;
  out.events_ = std::move(events);
  out.idempotency_key_ = std::move(idempotency_key);
  if (!out.idempotency_key_.empty()) out.fingerprint_ = std::move(fingerprint);
  return out;
}

namespace {

status check_key(const std::optional<std::string>& key) {
  return key ? validate_idempotency_key(*key) : status::ok();
}

result<parsed_append> checked(result<parsed_events> parsed,
                              std::optional<std::string> idempotency_key) {
  if (!parsed) return parsed.error();
  if (auto st = check_key(idempotency_key); !st) return st;
  return parsed_append{checked_append_access::make(std::move(parsed->events),
                                                   idempotency_key.value_or(""),
                                                   std::move(parsed->fingerprint)),
                       parsed->was_array};
}

}  // namespace

result<parsed_append> parse_append(std::string_view body,
                                   std::optional<std::string> idempotency_key) {
  if (auto st = check_key(idempotency_key); !st) return st;
  if (json_deeper_than(body, max_json_depth))
    return status{errc::invalid_json, "the body nests JSON deeper than 256 levels"};
  const bool with_key = idempotency_key.has_value();
  return checked(parse_events(body, with_key), std::move(idempotency_key));
}

result<parsed_append> append_from_json(const nlohmann::json& events,
                                       std::optional<std::string> idempotency_key) {
  const bool with_key = idempotency_key.has_value();
  return checked(events_from_json(events, with_key), std::move(idempotency_key));
}

result<checked_append> check_append(append_request request) {
  if (auto st = validate_inputs(request.events); !st) return st;
  std::string fingerprint;
  if (!request.idempotency_key.empty()) {
    if (auto st = validate_idempotency_key(request.idempotency_key); !st) return st;
    fingerprint = fingerprint_inputs(request.events);
  }
  return checked_append_access::make(std::move(request.events),
                                     std::move(request.idempotency_key),
                                     std::move(fingerprint));
}

}  // namespace derive
