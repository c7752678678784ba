#include "core/view_meta.hpp"

#include "core/coding.hpp"
#include "core/lmdb_util.hpp"

namespace derive {
namespace {

constexpr std::string_view meta_failure = "failure";

// A fixed64 record that may be absent.
int get_optional(MDB_txn* txn, MDB_dbi dbi, std::string_view name, std::optional<uint64_t>& out) {
  uint64_t v = 0;
  bool found = false;
  int rc = get_fixed64_value(txn, dbi, name, v, &found);
  if (found) out = v;
  return rc;
}

}  // namespace

int read_view_meta(MDB_txn* txn, unsigned meta_dbi, view_meta& out) {
  int rc = get_optional(txn, meta_dbi, meta_format, out.format);
  if (rc == MDB_SUCCESS && out.format && *out.format != view_format) return MDB_SUCCESS;
  if (rc == MDB_SUCCESS) rc = get_fixed64_value(txn, meta_dbi, meta_offset, out.offset);
  if (rc == MDB_SUCCESS) rc = get_view_failure(txn, meta_dbi, out.failure);
  if (rc == MDB_SUCCESS) rc = get_optional(txn, meta_dbi, meta_retention, out.retention);
  if (rc == MDB_SUCCESS)
    rc = get_optional(txn, meta_dbi, meta_changelog_bytes, out.changelog_bytes);
  if (rc == MDB_SUCCESS) rc = get_view_digest(txn, meta_dbi, out.digest);
  return rc;
}

namespace {

std::string age_key(int64_t ms) {
  std::string key(meta_age_prefix);
  uint64_t v = ms < 0 ? 0 : static_cast<uint64_t>(ms);
  for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(v >> shift));
  return key;
}

}  // namespace

int read_age_marks(MDB_txn* txn, unsigned meta_dbi, std::vector<age_mark>& out) {
  out.clear();
  cursor_guard cursor;
  if (int rc = cursor.open(txn, meta_dbi); rc != MDB_SUCCESS) return rc;
  MDB_val k = to_val(meta_age_prefix), v;
  int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_SET_RANGE);
  while (rc == MDB_SUCCESS) {
    std::string_view key = to_view(k);
    if (key.substr(0, meta_age_prefix.size()) != meta_age_prefix) break;
    key.remove_prefix(meta_age_prefix.size());
    std::string_view value = to_view(v);
    age_mark mark;
    if (key.size() != 8 || !get_fixed64(value, mark.offset)) return MDB_CORRUPTED;
    uint64_t ms = 0;
    for (char c : key) ms = (ms << 8) | static_cast<unsigned char>(c);
    mark.ms = static_cast<int64_t>(ms);
    out.push_back(mark);
    rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT);
  }
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

int put_age_mark(MDB_txn* txn, unsigned meta_dbi, const age_mark& mark) {
  return put_fixed64_value(txn, meta_dbi, age_key(mark.ms), mark.offset);
}

int delete_age_mark(MDB_txn* txn, unsigned meta_dbi, int64_t ms) {
  std::string key = age_key(ms);
  MDB_val k = to_val(key);
  int rc = mdb_del(txn, meta_dbi, &k, nullptr);
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

int get_view_digest(MDB_txn* txn, unsigned meta_dbi, std::optional<std::string>& out) {
  MDB_val k = to_val(meta_digest), d;
  out.reset();
  int rc = mdb_get(txn, meta_dbi, &k, &d);
  if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
  if (rc != MDB_SUCCESS) return rc;
  if (d.mv_size != 32) return MDB_CORRUPTED;
  out.emplace(to_view(d));
  return MDB_SUCCESS;
}

int put_view_digest(MDB_txn* txn, unsigned meta_dbi, std::string_view raw) {
  MDB_val k = to_val(meta_digest), v = to_val(raw);
  return mdb_put(txn, meta_dbi, &k, &v, 0);
}

int get_view_failure(MDB_txn* txn, unsigned meta_dbi, std::optional<view_failure>& out) {
  MDB_val k = to_val(meta_failure), d;
  out.reset();
  int rc = mdb_get(txn, meta_dbi, &k, &d);
  if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
  if (rc != MDB_SUCCESS) return rc;
  std::string_view bytes = to_view(d);
  view_failure f;
  if (!get_fixed64(bytes, f.offset)) return MDB_CORRUPTED;
  f.error.assign(bytes);
  out = std::move(f);
  return MDB_SUCCESS;
}

int put_view_failure(MDB_txn* txn, unsigned meta_dbi, const std::optional<view_failure>& failure) {
  MDB_val k = to_val(meta_failure);
  if (!failure) {
    int rc = mdb_del(txn, meta_dbi, &k, nullptr);
    return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
  }
  std::string bytes;
  put_fixed64(bytes, failure->offset);
  bytes.append(failure->error);
  MDB_val v = to_val(bytes);
  return mdb_put(txn, meta_dbi, &k, &v, 0);
}

}  // namespace derive
