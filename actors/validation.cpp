#include "actors/validation.hpp"

#include <string>

#include <nlohmann/json.hpp>

#include "core/event.hpp"

namespace derive {
namespace {

bool type_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == ':' || c == '-';
}

std::string where(const append_request& request, size_t i, const char* field) {
  if (request.events.size() == 1) return field;
  return "events[" + std::to_string(i) + "]." + field;
}

}  // namespace

status validate_events(const append_request& request) {
  if (request.events.empty() || request.events.size() > max_events_per_append)
    return {errc::invalid_event, "an append holds 1 to " + std::to_string(max_events_per_append) +
                                     " events, not " + std::to_string(request.events.size())};
  for (size_t i = 0; i < request.events.size(); ++i) {
    const auto& e = request.events[i];
    bool type_ok = !e.type.empty() && e.type.size() <= max_type_length;
    for (char c : e.type) type_ok = type_ok && type_char(c);
    if (!type_ok)
      return {errc::invalid_event, where(request, i, "type") +
                                       " must be 1-128 characters of A-Z a-z 0-9 . _ : -"};
    if (e.key.size() > max_key_bytes)
      return {errc::invalid_event, where(request, i, "key") + " is longer than 1024 bytes"};
    if (e.subject.size() > max_subject_bytes)
      return {errc::invalid_event, where(request, i, "subject") + " is longer than 256 bytes"};
    if (!nlohmann::json::accept(e.data))
      return {errc::invalid_event, where(request, i, "data") + " is not valid JSON"};
  }
  return status::ok();
}

status prepare_idempotency(append_request& request) {
  if (request.idempotency_key.empty()) return status::ok();
  if (auto s = validate_idempotency_key(request.idempotency_key); !s) return s;
  if (!request.fingerprint.empty()) return status::ok();
  auto events = nlohmann::json::array();
  for (const auto& e : request.events) {
    nlohmann::json item = {{"type", e.type}, {"data", nlohmann::json::parse(e.data)}};
    if (!e.key.empty()) item["key"] = e.key;
    if (!e.subject.empty()) item["subject"] = e.subject;
    events.push_back(std::move(item));
  }
  auto parsed = events_from_json(events);
  if (!parsed) return parsed.error();
  request.fingerprint = parsed->fingerprint;
  return status::ok();
}

}  // namespace derive
