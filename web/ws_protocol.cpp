#include "web/ws_protocol.hpp"

#include <nlohmann/json.hpp>

#include "core/append_check.hpp"
#include "core/json_check.hpp"
#include "core/json_text.hpp"
#include "web/errors.hpp"

namespace derive::web {
namespace {

using nlohmann::json;

ws_error bad_message(std::optional<std::string> id, std::string message) {
  return {std::move(id), std::string(ws_code::bad_message), std::move(message)};
}

ws_error error_of(std::string id, const status& st) {
  return {std::move(id), std::string(to_string(st.code())), st.message()};
}

ws_error invalid(std::string id, std::string message) {
  return error_of(std::move(id), {errc::invalid_parameter, std::move(message)});
}

size_t utf8_chars(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// A member that is absent or null counts as absent.
const json* member(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<uint64_t> as_uint(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

std::variant<ws_request, ws_error> parse_subscribe(std::string id, const json& msg) {
  ws_subscribe sub;
  const json* view = member(msg, "view");
  if (!view || !view->is_string()) return invalid(id, "subscribe needs \"view\": a string");
  sub.filter.view = view->get<std::string>();
  const json* key = member(msg, "key");
  const json* prefix = member(msg, "prefix");
  if ((key == nullptr) == (prefix == nullptr)) {
    return invalid(id, "subscribe needs exactly one of \"key\" and \"prefix\"");
  }
  if (key) {
    if (!key->is_string()) return invalid(id, "\"key\" must be a string");
    sub.filter.key = key->get<std::string>();
  } else {
    if (!prefix->is_string()) return invalid(id, "\"prefix\" must be a string");
    sub.filter.prefix = prefix->get<std::string>();
  }
  if (const json* from = member(msg, "from")) {
    sub.from = as_uint(*from);
    if (!sub.from) return invalid(id, "\"from\" must be a non-negative integer offset");
  }
  return ws_request{std::move(id), std::move(sub)};
}

std::variant<ws_request, ws_error> parse_get(std::string id, const json& msg) {
  ws_get get;
  const json* view = member(msg, "view");
  if (!view || !view->is_string()) return invalid(id, "get needs \"view\": a string");
  const json* key = member(msg, "key");
  if (!key || !key->is_string()) return invalid(id, "get needs \"key\": a string");
  get.view = view->get<std::string>();
  get.key = key->get<std::string>();
  if (const json* after = member(msg, "after")) {
    get.after = as_uint(*after);
    if (!get.after) return invalid(id, "\"after\" must be a non-negative integer offset");
  }
  if (const json* timeout = member(msg, "timeout_ms")) {
    auto ms = as_uint(*timeout);
    if (!ms || *ms > max_wait_ms) {
      return invalid(id, "\"timeout_ms\" must be an integer from 0 to 30000");
    }
    get.timeout = std::chrono::milliseconds(*ms);
  }
  return ws_request{std::move(id), std::move(get)};
}

std::variant<ws_request, ws_error> parse_append(std::string id, const json& msg) {
  const json* events = member(msg, "events");
  if (!events || !events->is_array()) {
    return ws_error{id, std::string(to_string(errc::invalid_event)),
                    "append needs \"events\": an array of 1 to 1000 events"};
  }
  std::optional<std::string> idempotency_key;
  if (const json* key = member(msg, "idempotency_key")) {
    if (!key->is_string()) {
      return ws_error{id, std::string(to_string(errc::invalid_idempotency_key)),
                      "\"idempotency_key\" must be a string of 1 to 128 visible ASCII characters"};
    }
    idempotency_key = key->get<std::string>();
  }
  auto parsed = append_from_json(*events, std::move(idempotency_key));
  if (!parsed) {
    return error_of(std::move(id), parsed.error());
  }
  return ws_request{std::move(id), ws_append{std::move(parsed->request)}};
}

// A member name twice or a number not kept exactly (core/json_check.hpp):
// invalid_event inside an append's events, else bad_message (without the id
// when "id" itself is the duplicate).
ws_error refuse_issue(const json_issue& issue, const std::string& op, std::string id) {
  if (op == "append" && (issue.path == ".events" || issue.path.rfind(".events[", 0) == 0)) {
    return error_of(std::move(id), {errc::invalid_event, issue.describe("")});
  }
  std::optional<std::string> echoed;
  if (issue.path != ".id") echoed = std::move(id);
  return bad_message(std::move(echoed), issue.describe(""));
}

void append_id(std::string& out, const std::string& id) {
  out += "\"id\":";
  append_json_string(out, id);
}

}  // namespace

std::variant<ws_request, ws_error> parse_ws_request(std::string_view text) {
  if (json_deeper_than(text, max_json_depth)) {
    return bad_message(std::nullopt, "the message nests JSON deeper than 256 levels");
  }
  auto check = check_json(text);
  if (!check.well_formed) {
    return bad_message(std::nullopt, "the message is not valid JSON: " + check.syntax_error);
  }
  json msg = json::parse(text, nullptr, false);
  if (msg.is_discarded()) return bad_message(std::nullopt, "the message is not valid JSON");
  if (!msg.is_object()) return bad_message(std::nullopt, "the message must be a JSON object");
  std::optional<std::string> id;
  auto id_it = msg.find("id");
  if (id_it != msg.end() && id_it->is_string() &&
      utf8_chars(id_it->get_ref<const std::string&>()) <= max_id_chars) {
    id = id_it->get<std::string>();
  }
  auto op_it = msg.find("op");
  if (op_it == msg.end() || !op_it->is_string()) {
    return bad_message(id,
                       "the message needs \"op\": subscribe, unsubscribe, append, get or auth");
  }
  const auto& op = op_it->get_ref<const std::string&>();
  if (op != "subscribe" && op != "unsubscribe" && op != "append" && op != "get" &&
      op != "auth") {
    return bad_message(id, "unknown op \"" + op +
                               "\"; known: subscribe, unsubscribe, append, get, auth");
  }
  if (!id) {
    return bad_message(std::nullopt,
                       "the message needs \"id\": a string of at most 64 characters");
  }
  if (check.issue) return refuse_issue(*check.issue, op, std::move(*id));
  if (op == "subscribe") return parse_subscribe(std::move(*id), msg);
  if (op == "get") return parse_get(std::move(*id), msg);
  if (op == "append") return parse_append(std::move(*id), msg);
  if (op == "auth") {
    const json* token = member(msg, "token");
    if (!token || !token->is_string() || token->get_ref<const std::string&>().empty()) {
      return invalid(*id, "auth needs \"token\": a non-empty string (a JWT)");
    }
    return ws_request{std::move(*id), ws_auth{token->get<std::string>()}};
  }
  return ws_request{std::move(*id), ws_unsubscribe{}};
}

std::string encode_ws_error(const std::optional<std::string>& id, std::string_view code,
                            std::string_view message) {
  std::string out = "{\"op\":\"error\",\"id\":";
  if (id) append_json_string(out, *id);
  else out += "null";
  out += ",\"code\":";
  append_json_string(out, code);
  out += ",\"message\":";
  append_json_string(out, message);
  out += '}';
  return out;
}

std::string encode_ws_error(const std::optional<std::string>& id, std::string_view code,
                            std::string_view message, uint64_t retry_after_ms) {
  std::string out = encode_ws_error(id, code, message);
  out.pop_back();
  out += ",\"retry_after_ms\":";
  append_uint(out, retry_after_ms);
  out += '}';
  return out;
}

std::string encode_ws_error(const std::optional<std::string>& id, const status& st) {
  return encode_ws_error(id, to_string(st.code()), st.message());
}

std::string encode_authenticated(const std::string& id, std::string_view sub, int64_t expires) {
  std::string out = "{\"op\":\"authenticated\",";
  append_id(out, id);
  out += ",\"sub\":";
  append_json_string(out, sub);
  out += ",\"expires\":";
  out += std::to_string(expires);
  out += '}';
  return out;
}

std::string encode_unsubscribed(const std::string& id) {
  std::string out = "{\"op\":\"unsubscribed\",";
  append_id(out, id);
  out += '}';
  return out;
}

std::string encode_appended(const std::string& id, const append_outcome& outcome) {
  std::string out = "{\"op\":\"appended\",";
  append_id(out, id);
  out += ",\"offsets\":[";
  for (uint64_t i = 0; i < outcome.count; ++i) {
    if (i) out += ',';
    append_uint(out, outcome.first_offset + i);
  }
  out += ']';
  if (outcome.replayed) out += ",\"replayed\":true";
  out += '}';
  return out;
}

std::string encode_value(const std::string& id, std::string_view key,
                         const std::optional<std::string>& value, uint64_t offset) {
  std::string out = "{\"op\":\"value\",";
  append_id(out, id);
  out += ",\"key\":";
  append_json_string(out, key);
  out += ",\"value\":";
  out += value ? *value : "null";
  out += ",\"offset\":";
  append_uint(out, offset);
  out += '}';
  return out;
}

std::string encode_resumed(const std::string& id, uint64_t offset) {
  std::string out = "{\"op\":\"resumed\",";
  append_id(out, id);
  out += ",\"offset\":";
  append_uint(out, offset);
  out += '}';
  return out;
}

std::vector<std::string> encode_snapshot(const std::string& id, uint64_t offset,
                                         const std::vector<key_value>& items, bool reset,
                                         size_t chunk_items, size_t chunk_bytes) {
  std::string head = "{\"op\":\"snapshot\",";
  append_id(head, id);
  head += ",\"offset\":";
  append_uint(head, offset);
  if (reset) head += ",\"reset\":true";
  head += ",\"items\":[";
  chunk_items = std::max<size_t>(chunk_items, 1);

  std::vector<std::string> out;
  std::string msg = head;
  size_t in_msg = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (in_msg > 0) msg += ',';
    msg += "{\"key\":";
    append_json_string(msg, items[i].key);
    msg += ",\"value\":";
    msg += items[i].value;
    msg += '}';
    ++in_msg;
    bool last = i + 1 == items.size();
    if (!last && (in_msg >= chunk_items || msg.size() >= chunk_bytes)) {
      msg += "],\"more\":true}";
      out.push_back(std::move(msg));
      msg = head;
      in_msg = 0;
    }
  }
  msg += "],\"more\":false}";
  out.push_back(std::move(msg));
  return out;
}

std::string encode_snapshot_chunk(const std::string& id, uint64_t offset,
                                  const std::vector<key_value>& items, bool reset, bool more) {
  size_t n = 64 + id.size();
  for (const auto& kv : items) n += kv.key.size() + kv.value.size() + 24;
  std::string msg;
  msg.reserve(n);
  msg += "{\"op\":\"snapshot\",";
  append_id(msg, id);
  msg += ",\"offset\":";
  append_uint(msg, offset);
  if (reset) msg += ",\"reset\":true";
  msg += ",\"items\":[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) msg += ',';
    msg += "{\"key\":";
    append_json_string(msg, items[i].key);
    msg += ",\"value\":";
    msg += items[i].value;
    msg += '}';
  }
  msg += more ? "],\"more\":true}" : "],\"more\":false}";
  return msg;
}

std::string changes_prefix(const std::string& id) {
  std::string out = "{\"op\":\"changes\",";
  append_id(out, id);
  out += ",\"items\":[";
  return out;
}

change_ptr make_change(uint64_t offset, std::string key, std::optional<std::string> value) {
  auto c = std::make_shared<published_change>();
  std::string wire;
  append_change_item(wire, offset, key, value);
  c->offset = offset;
  c->key = std::move(key);
  c->value = std::move(value);
  c->wire = std::make_shared<const std::string>(std::move(wire));
  return c;
}

}  // namespace derive::web
