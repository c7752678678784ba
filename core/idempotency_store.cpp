#include "core/idempotency_store.hpp"

#include <algorithm>

#include "core/coding.hpp"
#include "core/lmdb_util.hpp"

// idem:         key -> first fixed64 | count fixed64 | ts fixed64 | fingerprint
// idem_by_time: big64 ts (negative clamped to 0) | key -> empty, so that byte
//               order is time order.

namespace derive {
namespace {

constexpr size_t idem_fixed_bytes = 24;

std::string encode_idem(const append_outcome& outcome, int64_t ts, std::string_view fp) {
  std::string v;
  v.reserve(idem_fixed_bytes + fp.size());
  put_fixed64(v, outcome.first_offset);
  put_fixed64(v, outcome.count);
  put_fixed64(v, static_cast<uint64_t>(ts));
  v.append(fp);
  return v;
}

bool decode_idem(std::string_view v, stored_outcome& out) {
  uint64_t ts = 0;
  if (!get_fixed64(v, out.outcome.first_offset) || !get_fixed64(v, out.outcome.count) ||
      !get_fixed64(v, ts))
    return false;
  out.ts = static_cast<int64_t>(ts);
  out.fingerprint = v;
  return true;
}

uint64_t time_order(int64_t ts) { return static_cast<uint64_t>(std::max<int64_t>(ts, 0)); }

std::string time_key(int64_t ts, std::string_view key) {
  std::string k(8, '\0');
  encode_big64(&k[0], time_order(ts));
  k.append(key);
  return k;
}

status corrupt_key(std::string_view key) {
  return {errc::corruption, "the stored idempotency key '" + std::string(key) + "' is corrupt"};
}

}  // namespace

status idempotency_store::open() {
  for (auto [name, dbi] : {std::pair{"idem", &idem_}, std::pair{"idem_by_time", &by_time_}}) {
    auto h = env_.database(name);
    if (!h) return h.error();
    *dbi = *h;
  }
  return status::ok();
}

result<std::optional<stored_outcome>> idempotency_store::find(MDB_txn* txn,
                                                              const std::string& key) const {
  MDB_val k = to_val(key), v{};
  int rc = mdb_get(txn, idem_, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<stored_outcome>{};
  if (rc != MDB_SUCCESS) return env_.check(rc, "looking up an idempotency key");
  stored_outcome out;
  if (!decode_idem(to_view(v), out)) return corrupt_key(key);
  return std::optional<stored_outcome>{out};
}

status idempotency_store::put(MDB_txn* txn, const std::string& key,
                              const append_outcome& outcome, int64_t ts,
                              std::string_view fingerprint) {
  auto value = encode_idem(outcome, ts, fingerprint);
  auto by_time = time_key(ts, key);
  MDB_val k = to_val(key), v = to_val(value), tk = to_val(by_time), tv{0, nullptr};
  if (int rc = mdb_put(txn, idem_, &k, &v, 0); rc != MDB_SUCCESS)
    return env_.check(rc, "storing an idempotency key");
  if (int rc = mdb_put(txn, by_time_, &tk, &tv, 0); rc != MDB_SUCCESS)
    return env_.check(rc, "storing an idempotency key");
  return status::ok();
}

status idempotency_store::prune(MDB_txn* txn, int64_t now, const log_options& options,
                                bool& dirty) {
  if (options.idempotency_prune_per_commit == 0) return status::ok();
  MDB_stat stat{};
  if (int rc = mdb_stat(txn, idem_, &stat); rc != MDB_SUCCESS)
    return env_.check(rc, "counting idempotency keys");
  uint64_t count = stat.ms_entries;
  if (count <= options.idempotency_min_keys) return status::ok();
  const int64_t cutoff = now - static_cast<int64_t>(options.idempotency_retention.count());
  cursor_guard c;
  if (int rc = c.open(txn, by_time_); rc != MDB_SUCCESS)
    return env_.check(rc, "pruning idempotency keys");
  for (unsigned n = 0; n < options.idempotency_prune_per_commit; ++n) {
    if (count <= options.idempotency_min_keys) break;
    MDB_val tk{}, tv{};
    int rc = mdb_cursor_get(c.get(), &tk, &tv, MDB_FIRST);
    if (rc == MDB_NOTFOUND) break;
    if (rc != MDB_SUCCESS) return env_.check(rc, "pruning idempotency keys");
    if (tk.mv_size < 8) return {errc::corruption, "an idempotency time index entry is corrupt"};
    auto key_ts = static_cast<int64_t>(decode_big64(static_cast<const char*>(tk.mv_data)));
    if (key_ts >= cutoff) break;
    MDB_val k = to_val(to_view(tk).substr(8)), v{};
    rc = mdb_get(txn, idem_, &k, &v);
    stored_outcome entry;
    // Delete the key only if this index entry is the key's own (same ts).
    if (rc == MDB_SUCCESS && decode_idem(to_view(v), entry) &&
        static_cast<int64_t>(time_order(entry.ts)) == key_ts) {
      if (rc = mdb_del(txn, idem_, &k, nullptr); rc != MDB_SUCCESS)
        return env_.check(rc, "pruning an idempotency key");
      --count;
    } else if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
      return env_.check(rc, "pruning idempotency keys");
    }
    if (rc = mdb_cursor_del(c.get(), 0); rc != MDB_SUCCESS)
      return env_.check(rc, "pruning idempotency keys");
    dirty = true;
  }
  return status::ok();
}

result<size_t> idempotency_store::erase_covering(MDB_txn* txn,
                                                 const std::vector<uint64_t>& offsets) {
  if (offsets.empty()) return size_t{0};
  cursor_guard c;
  if (int rc = c.open(txn, idem_); rc != MDB_SUCCESS)
    return env_.check(rc, "erasing idempotency keys");
  size_t erased = 0;
  MDB_val k{}, v{};
  int rc = mdb_cursor_get(c.get(), &k, &v, MDB_FIRST);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT)) {
    stored_outcome entry;
    if (!decode_idem(to_view(v), entry)) return corrupt_key(to_view(k));
    const uint64_t first = entry.outcome.first_offset;
    auto at = std::lower_bound(offsets.begin(), offsets.end(), first);
    if (at == offsets.end() || *at >= first + entry.outcome.count) continue;
    auto by_time = time_key(entry.ts, to_view(k));
    MDB_val tk = to_val(by_time);
    if (int r = mdb_del(txn, by_time_, &tk, nullptr); r != MDB_SUCCESS && r != MDB_NOTFOUND)
      return env_.check(r, "erasing an idempotency key");
    if (int r = mdb_cursor_del(c.get(), 0); r != MDB_SUCCESS)
      return env_.check(r, "erasing an idempotency key");
    ++erased;
  }
  if (rc != MDB_NOTFOUND) return env_.check(rc, "erasing idempotency keys");
  return erased;
}

}  // namespace derive
