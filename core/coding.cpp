#include "core/coding.hpp"

namespace derive {

void put_varint64(std::string& out, uint64_t v) {
  char buf[max_varint64_bytes];
  out.append(buf, static_cast<size_t>(encode_varint64(buf, v) - buf));
}

void put_length_prefixed(std::string& out, std::string_view bytes) {
  put_varint64(out, bytes.size());
  out.append(bytes);
}

void put_fixed64(std::string& out, uint64_t v) {
  char buf[8];
  encode_fixed64(buf, v);
  out.append(buf, sizeof buf);
}

}  // namespace derive
