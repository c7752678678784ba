#pragma once
// A view's changelog as readers see it: the keys each offset changed.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace derive {

// One key's new value at one offset; nullopt means deleted.
struct key_change {
  std::string key;
  std::optional<std::string> value;  // compact JSON text
};

// Every key a view changed at one view offset.
struct offset_changes {
  uint64_t offset = 0;
  std::vector<key_change> changes;
};

// A page of changelog.
struct changelog_page {
  // false when entries after `from` were pruned: the reader must start over
  // from a snapshot.
  bool served = true;
  std::vector<offset_changes> entries;  // ascending offset, all > from
  uint64_t view_offset = 0;             // the view's offset when read
};

}  // namespace derive
