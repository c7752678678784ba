#include "core/view_snapshot_impl.hpp"

#include <algorithm>

#include "core/state_keys.hpp"

namespace derive {

view_snapshot::view_snapshot(std::unique_ptr<impl> impl, uint64_t offset)
    : impl_(std::move(impl)), offset_(offset) {}
view_snapshot::~view_snapshot() = default;
view_snapshot::view_snapshot(view_snapshot&&) noexcept = default;
view_snapshot& view_snapshot::operator=(view_snapshot&&) noexcept = default;

result<std::optional<std::string>> view_snapshot::get(std::string_view key) const {
  std::optional<std::string> value;
  if (int rc = state_get(impl_->txn.get(), impl_->state_dbi, key, value); rc != MDB_SUCCESS)
    return decode_status(rc, "reading a view key");
  return value;
}

result<std::optional<std::string>> view_snapshot::get_private(std::string_view key) const {
  std::optional<std::string> value;
  if (int rc = state_get(impl_->txn.get(), impl_->private_dbi, key, value); rc != MDB_SUCCESS)
    return decode_status(rc, "reading a private view key");
  return value;
}

result<view_snapshot::page> view_snapshot::range(std::string_view prefix, std::string_view start,
                                                 size_t limit) const {
  state_cursor cursor;
  int rc = cursor.open(impl_->txn.get(), impl_->state_dbi);
  if (rc == MDB_SUCCESS) rc = cursor.seek(std::max(prefix, start));
  page p;
  while (rc == MDB_SUCCESS && cursor.valid() &&
         std::string_view(cursor.key()).substr(0, prefix.size()) == prefix) {
    if (p.items.size() == limit) {
      p.next = cursor.key();
      break;
    }
    p.items.push_back({cursor.key(), std::string(cursor.value())});
    rc = cursor.next();
  }
  if (rc != MDB_SUCCESS) return decode_status(rc, "reading a view range");
  return p;
}

}  // namespace derive
