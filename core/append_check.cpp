#include "core/append_check.hpp"

#include <nlohmann/json.hpp>

#include "core/coding.hpp"
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

void put_requests(std::string& out, const std::vector<checked_append>& group) {
  put_varint64(out, group.size());
  for (const auto& r : group) {
    put_length_prefixed(out, r.idempotency_key());
    put_length_prefixed(out, r.fingerprint());
    put_varint64(out, r.events().size());
    for (const auto& e : r.events()) {
      put_length_prefixed(out, e.type);
      put_length_prefixed(out, e.key);
      put_length_prefixed(out, e.subject);
      put_length_prefixed(out, e.data);
    }
  }
}

bool get_requests(std::string_view& in, std::vector<checked_append>& group) {
  uint64_t requests = 0;
  if (!get_varint64(in, requests) || requests > in.size()) return false;
  group.reserve(group.size() + requests);
  for (uint64_t i = 0; i < requests; ++i) {
    std::string_view key, fingerprint;
    uint64_t n = 0;
    if (!get_length_prefixed(in, key) || !get_length_prefixed(in, fingerprint) ||
        !get_varint64(in, n) || n > in.size())
      return false;
    std::vector<event_input> events(n);
    for (auto& e : events) {
      std::string_view type, ekey, subject, data;
      if (!get_length_prefixed(in, type) || !get_length_prefixed(in, ekey) ||
          !get_length_prefixed(in, subject) || !get_length_prefixed(in, data))
        return false;
      e.type = type;
      e.key = ekey;
      e.subject = subject;
      e.data = data;
    }
    group.push_back(checked_append_access::make(std::move(events), std::string(key),
                                                std::string(fingerprint)));
  }
  return true;
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
