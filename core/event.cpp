#include "core/event.hpp"

#include <nlohmann/json.hpp>

#include <cassert>
#include <cstdio>

#include "core/hash.hpp"
#include "core/json_check.hpp"
#include "core/json_text.hpp"

namespace derive {

namespace {

using json = nlohmann::json;

constexpr const char* type_rule = "must be 1-128 characters of A-Z a-z 0-9 . _ : -";

bool is_type_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == ':' || c == '-';
}

bool valid_type(const std::string& t) {
  if (t.empty() || t.size() > max_type_length) return false;
  for (unsigned char c : t)
    if (!is_type_char(c)) return false;
  return true;
}

status invalid(const std::string& where, const std::string& what) {
  return {errc::invalid_event, where + what};
}

// Reads an optional string member with a byte limit into `out`.
status optional_string(const json& ev, const char* name, size_t max_bytes,
                       const std::string& where, std::string& out) {
  auto it = ev.find(name);
  if (it == ev.end()) return status::ok();
  std::string field = where + "." + name;
  if (!it->is_string()) return invalid(field, " must be a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > max_bytes)
    return invalid(field, " must be at most " + std::to_string(max_bytes) + " bytes (it has " +
                              std::to_string(s.size()) + ")");
  if (!is_valid_utf8(s)) return invalid(field, " must be valid UTF-8");
  out = s;
  return status::ok();
}

// Validates one event object; `where` is "event" or "events[i]".
status event_from_json(const json& ev, const std::string& where, event_input& out) {
  if (!ev.is_object()) return invalid(where, " must be a JSON object");
  for (const auto& member : ev.items()) {
    const auto& name = member.key();
    if (name != "type" && name != "key" && name != "data" && name != "subject") {
      std::string shown = is_valid_utf8(name) ? name : "(not UTF-8)";
      return invalid(where, " has an unknown member \"" + shown +
                                "\" (allowed: type, key, data, subject)");
    }
  }
  auto type = ev.find("type");
  if (type == ev.end()) return invalid(where, ".type is required");
  if (!type->is_string() || !valid_type(type->get_ref<const std::string&>()))
    return invalid(where + ".type", std::string(" ") + type_rule);
  out.type = type->get_ref<const std::string&>();
  if (auto st = optional_string(ev, "key", max_key_bytes, where, out.key); !st) return st;
  if (auto st = optional_string(ev, "subject", max_subject_bytes, where, out.subject); !st)
    return st;
  if (auto data = ev.find("data"); data != ev.end()) {
    try {
      out.data = data->dump();
    } catch (const json::exception&) {
      return invalid(where + ".data", " contains a string that is not valid UTF-8");
    }
  }
  return status::ok();
}

std::string hex128(uint64_t a, uint64_t b) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return std::string(buf, 32);
}

// The canonical text is the compact dump of the events as an array; nlohmann's
// default object type is a sorted map, so member order and whitespace of the
// body do not matter. One event and an array holding just that event share a
// fingerprint (docs/storage.md, "Idempotency").
result<std::string> fingerprint_of(const json& value) {
  std::string canonical;
  try {
    canonical = value.dump();
  } catch (const json::exception&) {
    return status{errc::invalid_event, "the events contain a string that is not valid UTF-8"};
  }
  if (!value.is_array()) canonical = "[" + canonical + "]";
  return hex128(detail::hash64(canonical, detail::hash_a), detail::hash64(canonical, detail::hash_b));
}

}  // namespace

std::string event::to_json() const {
  std::string out;
  out.reserve(64 + type.size() + key.size() + subject.size() + data.size());
  out += "{\"offset\":";
  out += std::to_string(offset);
  out += ",\"ts\":";
  out += std::to_string(ts);
  out += ",\"type\":";
  append_json_string(out, type);
  out += ",\"key\":";
  append_json_string(out, key);
  out += ",\"data\":";
  out += data;
  if (!subject.empty()) {
    out += ",\"subject\":";
    append_json_string(out, subject);
  }
  if (redacted) out += ",\"redacted\":true";
  out += '}';
  return out;
}

result<parsed_events> parse_events(std::string_view body, bool fingerprint) {
  // The parser rejects ill-formed UTF-8 inside strings, so a body that is not
  // UTF-8 is invalid_json. What parsing would change (a duplicate member, a
  // number it cannot keep exactly) is refused before.
  auto check = check_json(body);
  if (!check.well_formed)
    return status{errc::invalid_json, "the body is not valid JSON (UTF-8): " + check.syntax_error};
  if (check.issue)
    return status{errc::invalid_event, check.issue->describe(check.root_is_array ? "events" : "event")};
  json value = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded())
    return status{errc::invalid_json, "the body is not valid JSON (UTF-8)"};
  return events_from_json(value, fingerprint);
}

result<parsed_events> events_from_json(const json& value, bool fingerprint) {
  parsed_events out;
  if (value.is_object()) {
    out.events.resize(1);
    if (auto st = event_from_json(value, "event", out.events[0]); !st) return st;
  } else if (value.is_array()) {
    out.was_array = true;
    if (value.empty() || value.size() > max_events_per_append)
      return status{errc::invalid_event, "events must hold 1-1000 events, not " +
                                             std::to_string(value.size())};
    out.events.resize(value.size());
    for (size_t i = 0; i < value.size(); ++i) {
      auto where = "events[" + std::to_string(i) + "]";
      if (auto st = event_from_json(value[i], where, out.events[i]); !st) return st;
    }
  } else {
    return status{errc::invalid_event,
                  "the events must be one JSON object or an array of 1-1000 objects"};
  }
  if (!fingerprint) return out;
  auto fp = fingerprint_of(value);
  if (!fp) return fp.error();
  out.fingerprint = std::move(*fp);
  return out;
}

namespace {

status validate_input(const event_input& e, const std::string& where) {
  if (!valid_type(e.type)) return invalid(where + ".type", std::string(" ") + type_rule);
  auto check = [&](const std::string& v, const char* name, size_t max_bytes) {
    std::string field = where + "." + name;
    if (v.size() > max_bytes)
      return invalid(field, " must be at most " + std::to_string(max_bytes) + " bytes (it has " +
                                std::to_string(v.size()) + ")");
    if (!is_valid_utf8(v)) return invalid(field, " must be valid UTF-8");
    return status::ok();
  };
  if (auto st = check(e.key, "key", max_key_bytes); !st) return st;
  if (auto st = check(e.subject, "subject", max_subject_bytes); !st) return st;
  return status::ok();
}

}  // namespace

status validate_inputs(const std::vector<event_input>& events) {
  if (events.empty() || events.size() > max_events_per_append)
    return status{errc::invalid_event,
                  "events must hold 1-1000 events, not " + std::to_string(events.size())};
  for (size_t i = 0; i < events.size(); ++i) {
    auto where = events.size() == 1 ? std::string("event") : "events[" + std::to_string(i) + "]";
    if (auto st = validate_input(events[i], where); !st) return st;
    auto check = check_json(events[i].data);
    if (!check.well_formed) return invalid(where + ".data", " must be valid JSON text");
    if (check.issue) return {errc::invalid_event, check.issue->describe(where + ".data")};
  }
  return status::ok();
}

std::string fingerprint_inputs(const std::vector<event_input>& events) {
  json body = json::array();
  for (const auto& e : events) {
    json item = {{"type", e.type}, {"data", json::parse(e.data)}};
    if (!e.key.empty()) item["key"] = e.key;
    if (!e.subject.empty()) item["subject"] = e.subject;
    body.push_back(std::move(item));
  }
  auto fp = fingerprint_of(body);
  assert(fp.has_value());  // validate_inputs checked UTF-8 and JSON
  return fp.has_value() ? std::move(*fp) : std::string();
}

status validate_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > 128)
    return {errc::invalid_idempotency_key,
            "Idempotency-Key must be 1-128 visible ASCII characters (it has " +
                std::to_string(key.size()) + ")"};
  for (unsigned char c : key)
    if (c < 0x21 || c > 0x7e)
      return {errc::invalid_idempotency_key,
              "Idempotency-Key must be 1-128 visible ASCII characters (0x21-0x7e); "
              "no spaces or control characters"};
  return status::ok();
}

}  // namespace derive
