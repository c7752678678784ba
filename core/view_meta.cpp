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
  return rc;
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
