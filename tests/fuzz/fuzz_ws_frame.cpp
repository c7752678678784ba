// Fuzz target: the bytes a client sends on a WebSocket connection, decoded
// by web/ws_frame's ws_decoder as the session does. The first byte chooses
// how the rest is split into reads. Fails when the events depend on the
// split, when a message passes the limit or a text message is not UTF-8, when
// a control payload passes 125 bytes, when a failure has another code than
// 1002/1007/1009, when anything is reported after a 1002 or a close frame,
// or when the decoder consumes more than it was given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/json_text.hpp"
#include "web/ws_frame.hpp"

namespace {

using namespace derive;
using namespace derive::web;
using kind = ws_event::kind;

constexpr size_t limit = 4096;

void require(bool ok) {
  if (!ok) std::abort();
}

struct seen {
  kind what;
  uint16_t code;
  std::string payload;
  bool operator==(const seen& o) const {
    return what == o.what && code == o.code && payload == o.payload;
  }
};

// Decodes `in` arriving in reads of `piece` bytes (0: all at once).
std::vector<seen> decode(std::string_view in, size_t piece) {
  ws_decoder d(limit);
  std::vector<seen> out;
  std::string buffered;
  bool ended = false;  // a 1002 or a close frame was reported
  size_t pos = 0;
  while (pos < in.size()) {
    size_t n = piece ? std::min(piece, in.size() - pos) : in.size() - pos;
    buffered.append(in.substr(pos, n));
    pos += n;
    for (;;) {
      size_t used = 0;
      auto ev = d.decode(buffered, used);
      require(used <= buffered.size());
      buffered.erase(0, used);
      if (ev.what == kind::need_more) break;
      require(!ended);
      switch (ev.what) {
        case kind::text: require(is_valid_utf8(ev.payload)); [[fallthrough]];
        case kind::binary: require(ev.payload.size() <= limit); break;
        case kind::ping:
        case kind::pong: require(ev.payload.size() <= ws_max_control_payload); break;
        case kind::close:
          ended = true;
          require(d.close_received());
          break;
        case kind::failed:
          require(ev.code == 1002 || ev.code == 1007 || ev.code == 1009);
          if (ev.code == 1002 || d.close_received()) ended = true;
          break;
        case kind::need_more: break;
      }
      out.push_back({ev.what, ev.code, std::move(ev.payload)});
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t piece = data[0] % 17 + 1;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  require(decode(in, 0) == decode(in, piece));
  return 0;
}
