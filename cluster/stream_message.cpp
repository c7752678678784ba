#include "cluster/stream_message.hpp"

#include "core/append_check.hpp"
#include "core/coding.hpp"

namespace derive {

namespace {

constexpr uint8_t message_format = 1;

status malformed(std::string_view what) {
  return {errc::corruption, "a stream message this build cannot read (" + std::string(what) +
                                "): is another program publishing to the stream's subject?"};
}

}  // namespace

uint64_t event_count(const std::vector<checked_append>& group) {
  uint64_t n = 0;
  for (const auto& r : group) n += r.events().size();
  return n;
}

std::string encode_stream_message(const std::vector<checked_append>& group, int64_t ts) {
  std::string out;
  out.push_back(static_cast<char>(message_format));
  put_varint64(out, zigzag_encode(ts));
  put_requests(out, group);
  return out;
}

result<stream_message> decode_stream_message(std::string_view in) {
  if (in.empty() || static_cast<uint8_t>(in[0]) != message_format) return malformed("format");
  in.remove_prefix(1);
  stream_message m;
  uint64_t ts = 0;
  if (!get_varint64(in, ts)) return malformed("header");
  m.ts = zigzag_decode(ts);
  if (!get_requests(in, m.group)) return malformed("requests");
  if (!in.empty()) return malformed("trailing bytes");
  return m;
}

}  // namespace derive
