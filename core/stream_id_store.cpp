#include "core/stream_id_store.hpp"

#include <lmdb.h>

#include "core/coding.hpp"
#include "core/lmdb_util.hpp"

// stream_ids:        id -> fixed64 first sequence
// stream_ids_by_seq: native uint64 sequence (MDB_INTEGERKEY) ->
//                    fixed64 ts | fixed64 digest | id

namespace derive {
namespace {

constexpr unsigned prune_per_call = 8;

struct by_seq_entry {
  int64_t ts = 0;
  stream_message_id message;
};

bool decode_entry(std::string_view v, by_seq_entry& out) {
  uint64_t ts = 0;
  if (!get_fixed64(v, ts) || !get_fixed64(v, out.message.digest)) return false;
  out.ts = static_cast<int64_t>(ts);
  out.message.id.assign(v);
  return true;
}

status corrupt(uint64_t seq) {
  return {errc::corruption,
          "the stored id of stream message " + std::to_string(seq) + " is corrupt"};
}

}  // namespace

status stream_id_store::open() {
  auto ids = env_.database("stream_ids");
  if (!ids) return ids.error();
  auto by_seq = env_.database("stream_ids_by_seq", MDB_INTEGERKEY);
  if (!by_seq) return by_seq.error();
  ids_ = *ids;
  by_seq_ = *by_seq;
  return status::ok();
}

result<std::optional<uint64_t>> stream_id_store::find(MDB_txn* txn, std::string_view id) const {
  MDB_val k = to_val(id), v{};
  int rc = mdb_get(txn, ids_, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<uint64_t>{};
  if (rc != MDB_SUCCESS) return env_.check(rc, "looking up a stream message id");
  std::string_view in = to_view(v);
  uint64_t seq = 0;
  if (!get_fixed64(in, seq))
    return status{errc::corruption, "the stored stream message id '" + std::string(id) +
                                        "' is corrupt"};
  return std::optional<uint64_t>{seq};
}

result<std::optional<stream_message_id>> stream_id_store::at(MDB_txn* txn, uint64_t seq) const {
  MDB_val k = uint64_val(seq), v{};
  int rc = mdb_get(txn, by_seq_, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<stream_message_id>{};
  if (rc != MDB_SUCCESS) return env_.check(rc, "reading a stream message id");
  by_seq_entry e;
  if (!decode_entry(to_view(v), e)) return corrupt(seq);
  return std::optional<stream_message_id>{std::move(e.message)};
}

status stream_id_store::put(MDB_txn* txn, uint64_t seq, int64_t ts, const stream_message_id& m,
                            bool first) {
  std::string value;
  put_fixed64(value, static_cast<uint64_t>(ts));
  put_fixed64(value, m.digest);
  value.append(m.id);
  MDB_val k = uint64_val(seq), v = to_val(value);
  if (int rc = mdb_put(txn, by_seq_, &k, &v, MDB_APPEND); rc != MDB_SUCCESS)
    return env_.check(rc, "recording a stream message id");
  if (!first) return status::ok();
  std::string at;
  put_fixed64(at, seq);
  MDB_val ik = to_val(m.id), iv = to_val(at);
  if (int rc = mdb_put(txn, ids_, &ik, &iv, 0); rc != MDB_SUCCESS)
    return env_.check(rc, "recording a stream message id");
  return status::ok();
}

status stream_id_store::prune(MDB_txn* txn, uint64_t seq, int64_t ts) {
  cursor_guard c;
  if (int rc = c.open(txn, by_seq_); rc != MDB_SUCCESS)
    return env_.check(rc, "pruning stream message ids");
  for (unsigned n = 0; n < prune_per_call; ++n) {
    MDB_val k{}, v{};
    int rc = mdb_cursor_get(c.get(), &k, &v, MDB_FIRST);
    if (rc == MDB_NOTFOUND) break;
    if (rc != MDB_SUCCESS) return env_.check(rc, "pruning stream message ids");
    uint64_t old = 0;
    by_seq_entry e;
    if (!get_native_uint64(k, old)) return corrupt(0);
    if (!decode_entry(to_view(v), e)) return corrupt(old);
    if (old + stream_id_window > seq || e.ts > ts - stream_id_window_ms) break;
    // The id goes only with the message that first carried it.
    auto first = find(txn, e.message.id);
    if (!first) return first.error();
    if (*first && **first == old) {
      MDB_val ik = to_val(e.message.id);
      if (rc = mdb_del(txn, ids_, &ik, nullptr); rc != MDB_SUCCESS)
        return env_.check(rc, "pruning a stream message id");
    }
    if (rc = mdb_cursor_del(c.get(), 0); rc != MDB_SUCCESS)
      return env_.check(rc, "pruning stream message ids");
  }
  return status::ok();
}

}  // namespace derive
