#pragma once
// A consistent read of one view's committed state.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <derive/status.hpp>

namespace derive {

struct key_value {
  std::string key;
  std::string value;  // compact JSON text
};

// Every call sees the same committed state, at offset(). Holds one storage
// read transaction: keep it short-lived (never across a wait) and release it
// before the runtime stops (an erasure's compaction waits for it, up to a
// bound, docs/storage.md "Erasure"). Usable from any thread, one thread at a time.
class view_snapshot {
 public:
  ~view_snapshot();
  view_snapshot(view_snapshot&&) noexcept;
  view_snapshot& operator=(view_snapshot&&) noexcept;

  uint64_t offset() const { return offset_; }
  result<std::optional<std::string>> get(std::string_view key) const;

  // Keys starting with `prefix`, from `start` on (inclusive; empty: the
  // first), in byte order, at most `limit`. `next` is set when more remain.
  struct page {
    std::vector<key_value> items;
    std::optional<std::string> next;
  };
  result<page> range(std::string_view prefix, std::string_view start, size_t limit) const;
  // How many keys start with `prefix`: a walk over the keys only, no value
  // is copied or decoded (keys longer than the storage's key limit share a
  // record: counting them reads it).
  result<uint64_t> count(std::string_view prefix) const;

  // The value of `key` in the view's private state (see view_txn), as of the
  // same commit as get() and range().
  result<std::optional<std::string>> get_private(std::string_view key) const;
  // range() and count() over the private state.
  result<page> range_private(std::string_view prefix, std::string_view start,
                             size_t limit) const;
  result<uint64_t> count_private(std::string_view prefix) const;

  class impl;  // core's: the read transaction and the databases

 private:
  friend class view_store;
  friend struct snapshot_access;  // core's: audits compare two snapshots
  view_snapshot(std::unique_ptr<impl> impl, uint64_t offset);
  std::unique_ptr<impl> impl_;
  uint64_t offset_ = 0;
};

}  // namespace derive
