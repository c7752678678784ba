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
  return out;
}

result<stream_message> decode_stream_message(std::string_view in) {
  if (in.empty() || static_cast<uint8_t>(in[0]) != message_format) return malformed("format");
  in.remove_prefix(1);
  stream_message m;
  uint64_t ts = 0, requests = 0;
  if (!get_varint64(in, ts) || !get_varint64(in, requests)) return malformed("header");
  m.ts = zigzag_decode(ts);
  if (requests > in.size()) return malformed("request count");
  m.group.reserve(requests);
  for (uint64_t i = 0; i < requests; ++i) {
    std::string_view key, fingerprint;
    uint64_t n = 0;
    if (!get_length_prefixed(in, key) || !get_length_prefixed(in, fingerprint) ||
        !get_varint64(in, n) || n > in.size())
      return malformed("request");
    std::vector<event_input> events(n);
    for (auto& e : events) {
      std::string_view type, ekey, subject, data;
      if (!get_length_prefixed(in, type) || !get_length_prefixed(in, ekey) ||
          !get_length_prefixed(in, subject) || !get_length_prefixed(in, data))
        return malformed("event");
      e.type = type;
      e.key = ekey;
      e.subject = subject;
      e.data = data;
    }
    m.group.push_back(checked_append_access::make(std::move(events), std::string(key),
                                                  std::string(fingerprint)));
  }
  if (!in.empty()) return malformed("trailing bytes");
  return m;
}

}  // namespace derive
