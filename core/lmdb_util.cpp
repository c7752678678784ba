#include "core/lmdb_util.hpp"

#include <cerrno>
#include <string>

#include "core/coding.hpp"

namespace derive {


int get_fixed64_value(MDB_txn* txn, MDB_dbi dbi, std::string_view key, uint64_t& v,
                      bool* found) {
  MDB_val k = to_val(key), d;
  v = 0;
  int rc = mdb_get(txn, dbi, &k, &d);
  if (found != nullptr) *found = rc == MDB_SUCCESS;
  if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
  if (rc != MDB_SUCCESS) return rc;
  if (d.mv_size != 8) return MDB_CORRUPTED;
  v = decode_fixed64(static_cast<const char*>(d.mv_data));
  return MDB_SUCCESS;
}

int put_fixed64_value(MDB_txn* txn, MDB_dbi dbi, std::string_view key, uint64_t v) {
  char bytes[8];
  encode_fixed64(bytes, v);
  MDB_val k = to_val(key), d{sizeof bytes, bytes};
  return mdb_put(txn, dbi, &k, &d, 0);
}

status lmdb_status(int rc, std::string_view what) {
  if (rc == MDB_SUCCESS) return status::ok();
  if (rc == MDB_MAP_FULL)
    return {errc::storage_full, "the data directory's map size is full while " +
                                    std::string(what) +
                                    "; restart with a larger map size or free space"};
  if (rc == ENOSPC || rc == EDQUOT)
    return {errc::storage_full, "the disk holding the data directory is full while " +
                                    std::string(what) + " (" + mdb_strerror(rc) +
                                    "); free space: writes resume by themselves"};
  return {errc::io_error,
          "LMDB failed while " + std::string(what) + ": " + mdb_strerror(rc)};
}

status decode_status(int rc, std::string_view what) {
  if (rc == MDB_CORRUPTED)
    return {errc::corruption, "stored bytes do not decode while " + std::string(what)};
  return lmdb_status(rc, what);
}

}  // namespace derive
