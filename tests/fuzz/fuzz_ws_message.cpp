// Fuzz target: a WebSocket client message (one text message, which the frame
// decoder has checked to be UTF-8: fuzz_ws_frame). Parses and checks it as the session does
// (web/ws_protocol), and encodes the answer it would send. Fails when an
// answer is not valid JSON, when an error echoes another id than the
// message's, or when a checked append holds data that does not parse back to
// the same value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/json_text.hpp"
#include "web/ws_protocol.hpp"

namespace {

using nlohmann::json;
using namespace derive;
using namespace derive::web;

void require(bool ok) {
  if (!ok) std::abort();
}

void check_answer(const std::string& answer) {
  require(json::accept(answer));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (!is_valid_utf8(text)) return -1;  // the decoder closes with 1007 before parsing
  auto parsed = parse_ws_request(text);
  if (auto* err = std::get_if<ws_error>(&parsed)) {
    check_answer(encode_ws_error(err->id, err->code, err->message));
    return 0;
  }
  auto& req = std::get<ws_request>(parsed);
  require(req.id.size() <= 4 * max_id_chars);
  check_answer(encode_ws_error(req.id, "bad_message", "x"));
  if (auto* append = std::get_if<ws_append>(&req.op)) {
    const auto& events = append->request.events();
    require(!events.empty() && events.size() <= max_events_per_append);
    for (const auto& e : events) {
      // What is stored parses back to itself: nothing was changed on the way.
      auto value = json::parse(e.data);
      require(json::parse(value.dump()) == value);
    }
    check_answer(encode_appended(req.id, append_outcome{1, events.size(), false}));
  } else if (auto* get = std::get_if<ws_get>(&req.op)) {
    check_answer(encode_value(req.id, get->key, std::nullopt, 0));
  } else if (std::holds_alternative<ws_unsubscribe>(req.op)) {
    check_answer(encode_unsubscribed(req.id));
  } else if (auto* sub = std::get_if<ws_subscribe>(&req.op)) {
    key_value kv;
    kv.key = sub->filter.key.value_or(sub->filter.prefix);
    kv.value = "null";
    for (const auto& m : encode_snapshot(req.id, sub->from.value_or(0), {kv}, true, 1, 16))
      check_answer(m);
  }
  return 0;
}
