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

bool get_varint64(std::string_view& in, uint64_t& v) {
  v = 0;
  for (unsigned shift = 0; shift < 64 && !in.empty(); shift += 7) {
    auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

bool get_length_prefixed(std::string_view& in, std::string_view& bytes) {
  uint64_t n = 0;
  if (!get_varint64(in, n) || n > in.size()) return false;
  bytes = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}

bool get_fixed64(std::string_view& in, uint64_t& v) {
  if (in.size() < 8) return false;
  v = decode_fixed64(in.data());
  in.remove_prefix(8);
  return true;
}

}  // namespace derive
