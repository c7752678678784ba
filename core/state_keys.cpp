#include "core/state_keys.hpp"

#include <algorithm>

#include "core/coding.hpp"

namespace derive {
namespace {

using bucket = state_cursor::bucket;

constexpr char key_tag = 'k';
constexpr char bucket_mark = '\xff';

// D: the longest view key stored directly.
size_t direct_max(MDB_txn* txn) {
  return static_cast<size_t>(mdb_env_get_maxkeysize(mdb_txn_env(txn))) - 2;
}

// The LMDB key of `key`: itself, or its bucket's.
std::string stored_key(std::string_view key, size_t direct) {
  std::string out(1, key_tag);
  if (key.size() <= direct) {
    out.append(key);
  } else {
    out.append(key.substr(0, direct));
    out.push_back(bucket_mark);
  }
  return out;
}

std::string encode_bucket(const bucket& b) {
  std::string out;
  put_varint64(out, b.size());
  for (const auto& [rest, value] : b) {
    put_length_prefixed(out, rest);
    put_length_prefixed(out, value);
  }
  return out;
}

bool decode_bucket(std::string_view in, bucket& b) {
  uint64_t n = 0;
  if (!get_varint64(in, n) || n == 0 || n > in.size()) return false;
  b.clear();
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view rest, value;
    if (!get_length_prefixed(in, rest) || !get_length_prefixed(in, value)) return false;
    if (!b.empty() && !(b.back().first < rest)) return false;
    b.emplace_back(rest, value);
  }
  return in.empty();
}

int read_bucket(MDB_txn* txn, MDB_dbi dbi, const std::string& skey, bucket& b) {
  MDB_val k = to_val(skey), v;
  int rc = mdb_get(txn, dbi, &k, &v);
  if (rc != MDB_SUCCESS) return rc;
  return decode_bucket(to_view(v), b) ? MDB_SUCCESS : MDB_CORRUPTED;
}

// Writes `b` under `skey`, or deletes the bucket when it is empty.
int write_bucket(MDB_txn* txn, MDB_dbi dbi, const std::string& skey, const bucket& b) {
  MDB_val k = to_val(skey);
  if (b.empty()) return mdb_del(txn, dbi, &k, nullptr);
  std::string bytes = encode_bucket(b);
  MDB_val v = to_val(bytes);
  return mdb_put(txn, dbi, &k, &v, 0);
}

// The entry for `rest` in `b`, or where it would go.
bucket::iterator find_in_bucket(bucket& b, std::string_view rest) {
  return std::lower_bound(b.begin(), b.end(), rest,
                          [](const auto& e, std::string_view r) { return e.first < r; });
}

}  // namespace

int state_get(MDB_txn* txn, MDB_dbi dbi, std::string_view key, std::optional<std::string>& out) {
  size_t direct = direct_max(txn);
  std::string skey = stored_key(key, direct);
  out.reset();
  if (key.size() <= direct) {
    MDB_val k = to_val(skey), v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_SUCCESS) out.emplace(to_view(v));
    return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
  }
  bucket b;
  int rc = read_bucket(txn, dbi, skey, b);
  if (rc != MDB_SUCCESS) return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
  std::string_view rest = key.substr(direct);
  auto i = find_in_bucket(b, rest);
  if (i != b.end() && i->first == rest) out = std::move(i->second);
  return MDB_SUCCESS;
}

int state_apply(MDB_txn* txn, MDB_dbi dbi, const key_change& change) {
  size_t direct = direct_max(txn);
  std::string skey = stored_key(change.key, direct);
  if (change.key.size() <= direct) {
    MDB_val k = to_val(skey);
    if (!change.value) {
      int rc = mdb_del(txn, dbi, &k, nullptr);
      return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
    }
    MDB_val v = to_val(*change.value);
    return mdb_put(txn, dbi, &k, &v, 0);
  }
  bucket b;
  int rc = read_bucket(txn, dbi, skey, b);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return rc;
  std::string rest = change.key.substr(direct);
  auto i = find_in_bucket(b, rest);
  bool found = i != b.end() && i->first == rest;
  if (!change.value) {
    if (!found) return MDB_SUCCESS;
    b.erase(i);
  } else if (found) {
    i->second = *change.value;
  } else {
    b.emplace(i, std::move(rest), *change.value);
  }
  return write_bucket(txn, dbi, skey, b);
}

int state_writer::open(MDB_txn* txn, MDB_dbi dbi) {
  txn_ = txn;
  dbi_ = dbi;
  direct_ = direct_max(txn);
  return cursor_.open(txn, dbi);
}

int state_writer::replace(const key_change& change, bool& had_old, std::string& old) {
  had_old = false;
  if (change.key.size() > direct_) {  // a bucket: read, then rewrite it
    std::optional<std::string> stored;
    if (int rc = state_get(txn_, dbi_, change.key, stored); rc != MDB_SUCCESS) return rc;
    if (stored) {
      had_old = true;
      old = std::move(*stored);
    }
    return state_apply(txn_, dbi_, change);
  }
  skey_.assign(1, key_tag);
  skey_.append(change.key);
  MDB_val k = to_val(skey_), v;
  if (!change.value) {
    int rc = mdb_cursor_get(cursor_.get(), &k, &v, MDB_SET_KEY);
    if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
    if (rc != MDB_SUCCESS) return rc;
    had_old = true;
    old.assign(static_cast<const char*>(v.mv_data), v.mv_size);
    return mdb_cursor_del(cursor_.get(), 0);
  }
  v = to_val(*change.value);
  int rc = mdb_cursor_put(cursor_.get(), &k, &v, MDB_NOOVERWRITE);
  if (rc != MDB_KEYEXIST) return rc;
  // MDB_KEYEXIST: `v` is the stored value and the cursor is at the key.
  had_old = true;
  old.assign(static_cast<const char*>(v.mv_data), v.mv_size);
  if (old == *change.value) return MDB_SUCCESS;
  v = to_val(*change.value);
  return mdb_cursor_put(cursor_.get(), &k, &v, MDB_CURRENT);
}

int state_writer::apply(const key_change& change) {
  bool had_old = false;
  return replace(change, had_old, ignored_old_);
}

int state_count(MDB_txn* txn, MDB_dbi dbi, std::string_view prefix, uint64_t& out) {
  out = 0;
  const size_t direct = direct_max(txn);
  if (prefix.size() > direct) {
    // Only the bucket of prefix[0, D) can hold such keys.
    bucket b;
    int rc = read_bucket(txn, dbi, stored_key(prefix, direct), b);
    if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
    if (rc != MDB_SUCCESS) return rc;
    std::string_view rest = prefix.substr(direct);
    for (const auto& e : b)
      if (std::string_view(e.first).substr(0, rest.size()) == rest) ++out;
    return MDB_SUCCESS;
  }
  cursor_guard cursor;
  if (int rc = cursor.open(txn, dbi); rc != MDB_SUCCESS) return rc;
  std::string first = stored_key(prefix, direct);
  MDB_val k = to_val(first), v;
  int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_SET_RANGE);
  while (rc == MDB_SUCCESS) {
    std::string_view skey = to_view(k);
    if (skey.empty() || skey.front() != key_tag) return MDB_CORRUPTED;
    std::string_view view_key = skey.substr(1);
    const bool is_bucket = skey.size() == direct + 2;
    if (is_bucket) view_key.remove_suffix(1);
    if (view_key.substr(0, prefix.size()) != prefix) break;  // past the prefix
    if (is_bucket) {
      std::string_view value = to_view(v);
      uint64_t n = 0;
      if (!get_varint64(value, n)) return MDB_CORRUPTED;
      out += n;
    } else {
      ++out;
    }
    rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT);
  }
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

int state_cursor::open(MDB_txn* txn, MDB_dbi dbi) {
  direct_ = direct_max(txn);
  return cursor_.open(txn, dbi);
}

int state_cursor::seek(std::string_view key) {
  std::string skey = stored_key(key, direct_);
  MDB_val k = to_val(skey), v;
  int rc = load(mdb_cursor_get(cursor_.get(), &k, &v, MDB_SET_RANGE));
  while (rc == MDB_SUCCESS && valid_ && key_ < key) rc = next();
  return rc;
}

int state_cursor::next() {
  if (in_bucket_ && index_ + 1 < bucket_.size()) {
    ++index_;
    set_bucket_entry();
    return MDB_SUCCESS;
  }
  MDB_val k, v;
  return load(mdb_cursor_get(cursor_.get(), &k, &v, MDB_NEXT));
}

int state_cursor::load(int rc) {
  valid_ = false;
  if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
  if (rc != MDB_SUCCESS) return rc;
  MDB_val k, v;
  if (int get = mdb_cursor_get(cursor_.get(), &k, &v, MDB_GET_CURRENT); get != MDB_SUCCESS)
    return get;
  std::string_view skey = to_view(k);
  if (skey.empty() || skey.front() != key_tag) return MDB_CORRUPTED;
  valid_ = true;
  in_bucket_ = skey.size() == direct_ + 2;
  if (!in_bucket_) {
    key_.assign(skey.substr(1));
    value_ = to_view(v);
    return MDB_SUCCESS;
  }
  if (!decode_bucket(to_view(v), bucket_)) return MDB_CORRUPTED;
  bucket_head_.assign(skey.substr(1, direct_));
  index_ = 0;
  set_bucket_entry();
  return MDB_SUCCESS;
}

void state_cursor::set_bucket_entry() {
  key_ = bucket_head_ + bucket_[index_].first;
  value_ = bucket_[index_].second;
}

}  // namespace derive
