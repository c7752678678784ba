#include "core/changelog_codec.hpp"

#include "core/coding.hpp"

namespace derive {
namespace {

constexpr char tag_deleted = '\0';
constexpr char tag_put = '\1';

}  // namespace

std::string encode_changelog_entry(const std::vector<key_change>& changes) {
  std::string out;
  encode_changelog_entry(changes, out);
  return out;
}

void encode_changelog_entry(const std::vector<key_change>& changes, std::string& out) {
  put_varint64(out, changes.size());
  for (const auto& c : changes) {
    put_length_prefixed(out, c.key);
    out.push_back(c.value ? tag_put : tag_deleted);
    if (c.value) put_length_prefixed(out, *c.value);
  }
}

bool decode_changelog_entry(std::string_view in, std::vector<key_change>& changes) {
  uint64_t n = 0;
  if (!get_varint64(in, n) || n > in.size()) return false;
  changes.clear();
  changes.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view key, value;
    if (!get_length_prefixed(in, key) || in.empty()) return false;
    char tag = in.front();
    in.remove_prefix(1);
    if (tag == tag_put) {
      if (!get_length_prefixed(in, value)) return false;
      changes.push_back({std::string(key), std::string(value)});
    } else if (tag == tag_deleted) {
      changes.push_back({std::string(key), std::nullopt});
    } else {
      return false;
    }
  }
  return in.empty();
}

}  // namespace derive
