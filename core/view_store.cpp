#include "core/view_store.hpp"

#include <lmdb.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "core/lmdb_util.hpp"

// Storage format: docs/storage.md, "Views".

namespace derive {
namespace {

static_assert(sizeof(size_t) == sizeof(uint64_t),
              "MDB_INTEGERKEY offsets need a 64-bit size_t");

// The layout of a view's databases (docs/storage.md, "Views"); stored in meta.
constexpr uint64_t view_format = 1;

// ---------------------------------------------------------------------------
// Byte encodings.

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool get_varint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (unsigned shift = 0; shift < 64 && !in.empty(); shift += 7) {
    auto byte = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    v |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

void put_bytes(std::string& out, std::string_view bytes) {
  put_varint(out, bytes.size());
  out.append(bytes);
}

bool get_bytes(std::string_view& in, std::string_view& bytes) {
  uint64_t n = 0;
  if (!get_varint(in, n) || n > in.size()) return false;
  bytes = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}

std::string fixed64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (8 * i));
  return out;
}

bool get_fixed64(std::string_view in, uint64_t& v) {
  if (in.size() < 8) return false;
  v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
  return true;
}

// Changelog value: varint count, then per change: bytes key, one tag byte
// (0 deleted, 1 put) and, for a put, bytes value. "bytes" = varint length + bytes.
std::string encode_changes(const std::vector<key_change>& changes) {
  std::string out;
  put_varint(out, changes.size());
  for (const auto& c : changes) {
    put_bytes(out, c.key);
    out.push_back(c.value ? '\1' : '\0');
    if (c.value) put_bytes(out, *c.value);
  }
  return out;
}

bool decode_changes(std::string_view in, std::vector<key_change>& changes) {
  uint64_t n = 0;
  if (!get_varint(in, n) || n > in.size()) return false;
  changes.clear();
  changes.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view key, value;
    if (!get_bytes(in, key) || in.empty()) return false;
    char tag = in.front();
    in.remove_prefix(1);
    if (tag == '\1') {
      if (!get_bytes(in, value)) return false;
      changes.push_back({std::string(key), std::string(value)});
    } else if (tag == '\0') {
      changes.push_back({std::string(key), std::nullopt});
    } else {
      return false;
    }
  }
  return in.empty();
}

// ---------------------------------------------------------------------------
// State keys (of the state and of the private database alike). LMDB keys are
// 1..maxkeysize (511) bytes; view keys may be empty or longer. Every stored
// key starts with the tag 'k'. A view key of at most direct_max =
// maxkeysize - 2 bytes is stored as 'k' + key. A longer key lives in a bucket:
// the LMDB key 'k' + key[0, direct_max) + '\xff' (exactly maxkeysize bytes, a
// length no direct key has) whose value holds every long key with that
// beginning, sorted by the rest of the key. Byte order of LMDB keys is then
// byte order of view keys, so cursors and ranges work unchanged.

constexpr char key_tag = 'k';
constexpr char bucket_mark = '\xff';

size_t direct_max(MDB_txn* txn) {
  return static_cast<size_t>(mdb_env_get_maxkeysize(mdb_txn_env(txn))) - 2;
}

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

// A bucket's entries: (rest of the key, value), ascending by rest.
using bucket = std::vector<std::pair<std::string, std::string>>;

std::string encode_bucket(const bucket& b) {
  std::string out;
  put_varint(out, b.size());
  for (const auto& [rest, value] : b) {
    put_bytes(out, rest);
    put_bytes(out, value);
  }
  return out;
}

bool decode_bucket(std::string_view in, bucket& b) {
  uint64_t n = 0;
  if (!get_varint(in, n) || n == 0 || n > in.size()) return false;
  b.clear();
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view rest, value;
    if (!get_bytes(in, rest) || !get_bytes(in, value)) return false;
    if (!b.empty() && !(b.back().first < rest)) return false;
    b.emplace_back(rest, value);
  }
  return in.empty();
}

// LMDB-style helpers below return an LMDB code; MDB_CORRUPTED stands for
// "stored bytes do not decode".

int read_bucket(MDB_txn* txn, MDB_dbi dbi, const std::string& skey, bucket& b) {
  MDB_val k = to_val(skey), v;
  int rc = mdb_get(txn, dbi, &k, &v);
  if (rc != MDB_SUCCESS) return rc;
  return decode_bucket(to_view(v), b) ? MDB_SUCCESS : MDB_CORRUPTED;
}

int write_bucket(MDB_txn* txn, MDB_dbi dbi, const std::string& skey, const bucket& b) {
  MDB_val k = to_val(skey);
  if (b.empty()) return mdb_del(txn, dbi, &k, nullptr);
  std::string bytes = encode_bucket(b);
  MDB_val v = to_val(bytes);
  return mdb_put(txn, dbi, &k, &v, 0);
}

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
  auto i = std::lower_bound(b.begin(), b.end(), rest,
                            [](const auto& e, std::string_view r) { return e.first < r; });
  if (i != b.end() && i->first == rest) out = std::move(i->second);
  return MDB_SUCCESS;
}

// Puts (value set) or deletes (nullopt) `key`.
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
  auto i = std::lower_bound(b.begin(), b.end(), rest,
                            [](const auto& e, const std::string& r) { return e.first < r; });
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

// Iterates view keys in byte order within one transaction.
class state_cursor {
 public:
  ~state_cursor() {
    if (cursor_ != nullptr) mdb_cursor_close(cursor_);
  }
  int open(MDB_txn* txn, MDB_dbi dbi) {
    direct_ = direct_max(txn);
    return mdb_cursor_open(txn, dbi, &cursor_);
  }
  // Positions at the first key >= `key`.
  int seek(std::string_view key) {
    std::string skey = stored_key(key, direct_);
    MDB_val k = to_val(skey), v;
    int rc = load(mdb_cursor_get(cursor_, &k, &v, MDB_SET_RANGE));
    while (rc == MDB_SUCCESS && valid_ && key_ < key) rc = next();
    return rc;
  }
  int next() {
    if (in_bucket_ && index_ + 1 < bucket_.size()) {
      ++index_;
      set_bucket_entry();
      return MDB_SUCCESS;
    }
    MDB_val k, v;
    return load(mdb_cursor_get(cursor_, &k, &v, MDB_NEXT));
  }
  bool valid() const { return valid_; }
  const std::string& key() const { return key_; }
  std::string_view value() const { return value_; }

 private:
  int load(int rc) {
    valid_ = false;
    if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
    if (rc != MDB_SUCCESS) return rc;
    MDB_val k, v;
    if (int get = mdb_cursor_get(cursor_, &k, &v, MDB_GET_CURRENT); get != MDB_SUCCESS)
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
  void set_bucket_entry() {
    key_ = bucket_head_ + bucket_[index_].first;
    value_ = bucket_[index_].second;
  }

  MDB_cursor* cursor_ = nullptr;
  size_t direct_ = 0;
  bool valid_ = false;
  bool in_bucket_ = false;
  bucket bucket_;
  std::string bucket_head_;
  size_t index_ = 0;
  std::string key_;
  std::string_view value_;
};

// ---------------------------------------------------------------------------
// Transactions and errors.

status to_status(int rc, const std::string& what) { return decode_status(rc, what); }

MDB_val offset_val(const uint64_t& offset) {
  return MDB_val{sizeof offset, const_cast<uint64_t*>(&offset)};
}

bool get_offset_key(const MDB_val& k, uint64_t& offset) {
  if (k.mv_size != sizeof offset) return false;
  std::memcpy(&offset, k.mv_data, sizeof offset);
  return true;
}

// Meta keys.
constexpr std::string_view meta_format = "format";
constexpr std::string_view meta_offset = "offset";
constexpr std::string_view meta_low_water = "low_water";
constexpr std::string_view meta_failure = "failure";
constexpr std::string_view meta_retention = "retention";

// Reads a fixed64 meta value; 0 (and *found false) when absent.
int get_meta_u64(MDB_txn* txn, MDB_dbi meta, std::string_view name, uint64_t& v,
                 bool* found = nullptr) {
  MDB_val k = to_val(name), d;
  v = 0;
  int rc = mdb_get(txn, meta, &k, &d);
  if (found != nullptr) *found = rc == MDB_SUCCESS;
  if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
  if (rc != MDB_SUCCESS) return rc;
  return d.mv_size == 8 && get_fixed64(to_view(d), v) ? MDB_SUCCESS : MDB_CORRUPTED;
}

int put_meta_u64(MDB_txn* txn, MDB_dbi meta, std::string_view name, uint64_t v) {
  std::string bytes = fixed64(v);
  MDB_val k = to_val(name), d = to_val(bytes);
  return mdb_put(txn, meta, &k, &d, 0);
}

// Failure record: fixed64 offset, then the error text.
int get_meta_failure(MDB_txn* txn, MDB_dbi meta, std::optional<view_failure>& failure) {
  MDB_val k = to_val(meta_failure), d;
  failure.reset();
  int rc = mdb_get(txn, meta, &k, &d);
  if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
  if (rc != MDB_SUCCESS) return rc;
  std::string_view bytes = to_view(d);
  view_failure f;
  if (!get_fixed64(bytes, f.offset)) return MDB_CORRUPTED;
  f.error.assign(bytes.substr(8));
  failure = std::move(f);
  return MDB_SUCCESS;
}

// Keeps the last change of each key (at its position); an offset holds each
// key at most once.
std::vector<key_change> last_change_per_key(const std::vector<key_change>& changes) {
  if (changes.size() < 2) return changes;
  std::unordered_map<std::string_view, size_t> last;
  for (size_t i = 0; i < changes.size(); ++i) last[changes[i].key] = i;
  std::vector<key_change> out;
  out.reserve(last.size());
  for (size_t i = 0; i < changes.size(); ++i)
    if (last[changes[i].key] == i) out.push_back(changes[i]);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// view_snapshot

class view_snapshot::impl {
 public:
  impl(MDB_txn* txn, unsigned state_dbi, unsigned private_dbi)
      : txn(txn), state_dbi(state_dbi), private_dbi(private_dbi) {}
  ~impl() { mdb_txn_abort(txn); }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  MDB_txn* const txn;
  const unsigned state_dbi;
  const unsigned private_dbi;
};

view_snapshot::view_snapshot(std::unique_ptr<impl> impl, uint64_t offset)
    : impl_(std::move(impl)), offset_(offset) {}
view_snapshot::~view_snapshot() = default;
view_snapshot::view_snapshot(view_snapshot&&) noexcept = default;
view_snapshot& view_snapshot::operator=(view_snapshot&&) noexcept = default;

result<std::optional<std::string>> view_snapshot::get(std::string_view key) const {
  std::optional<std::string> value;
  if (int rc = state_get(impl_->txn, impl_->state_dbi, key, value); rc != MDB_SUCCESS)
    return to_status(rc, "reading a view key");
  return value;
}

result<std::optional<std::string>> view_snapshot::get_private(std::string_view key) const {
  std::optional<std::string> value;
  if (int rc = state_get(impl_->txn, impl_->private_dbi, key, value); rc != MDB_SUCCESS)
    return to_status(rc, "reading a private view key");
  return value;
}

result<view_snapshot::page> view_snapshot::range(std::string_view prefix, std::string_view start,
                                                 size_t limit) const {
  state_cursor cursor;
  int rc = cursor.open(impl_->txn, impl_->state_dbi);
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
  if (rc != MDB_SUCCESS) return to_status(rc, "reading a view range");
  return p;
}

// ---------------------------------------------------------------------------
// view_store::impl

class view_store::impl {
 public:
  impl(environment& env, std::string label, view_store_options options)
      : env_(env), label_(std::move(label)), options_(options) {}

  // Loads the durable meta data (offset, failure, retention).
  status load();

  status commit(const std::vector<offset_changes>& batch, uint64_t new_offset,
                const std::vector<dead_letter>& dead_letters,
                const std::vector<key_change>& private_changes);
  status check_commit(const std::vector<offset_changes>& batch, uint64_t new_offset,
                      const std::vector<dead_letter>& dead_letters,
                      const std::vector<key_change>& private_changes) const;
  result<view_snapshot> snapshot() const;
  result<changelog_page> changes_since(uint64_t from, size_t limit) const;
  status set_failure(std::optional<view_failure> failure);
  std::optional<view_failure> failure() const {
    std::lock_guard<std::mutex> guard{mu_};
    return failure_;
  }
  result<std::vector<dead_letter>> dead_letters() const;
  status reset();
  uint64_t offset() const { return offset_.load(std::memory_order_acquire); }

  MDB_dbi state_ = 0, changes_ = 0, meta_ = 0, dead_ = 0, private_ = 0;

 private:
  // Begins a write transaction unless the environment refuses writes.
  status begin_write(txn_guard& txn);
  // An LMDB failure inside a write transaction; a panic fails the environment.
  status write_error(int rc, const std::string& what);
  std::string where(const std::string& what) const { return what + " of view " + label_; }
  int write_batch(MDB_txn* txn, const std::vector<offset_changes>& batch);
  int write_dead_letters(MDB_txn* txn, const std::vector<dead_letter>& dead_letters);
  int write_private(MDB_txn* txn, const std::vector<key_change>& private_changes);
  int prune(MDB_txn* txn, uint64_t new_offset);

  environment& env_;
  const std::string label_;  // "name/version", for messages
  const view_store_options options_;
  std::atomic<uint64_t> offset_{0};
  // What meta holds; used by the single writer only.
  bool format_recorded_ = false;
  std::optional<uint64_t> recorded_retention_;
  mutable std::mutex mu_;  // guards failure_
  std::optional<view_failure> failure_;
};

status view_store::impl::load() {
  txn_guard txn;
  int rc = txn.begin(env_.handle(), MDB_RDONLY);
  uint64_t format = 0, offset = 0, retention = 0;
  bool has_format = false, has_retention = false;
  std::optional<view_failure> failure;
  if (rc == MDB_SUCCESS) rc = get_meta_u64(txn.get(), meta_, meta_format, format, &has_format);
  if (rc == MDB_SUCCESS && has_format && format != view_format)
    return {errc::corruption, where("opening the store") + ": stored format " +
                                  std::to_string(format) + ", this build reads format " +
                                  std::to_string(view_format)};
  if (rc == MDB_SUCCESS) rc = get_meta_u64(txn.get(), meta_, meta_offset, offset);
  if (rc == MDB_SUCCESS) rc = get_meta_failure(txn.get(), meta_, failure);
  if (rc == MDB_SUCCESS)
    rc = get_meta_u64(txn.get(), meta_, meta_retention, retention, &has_retention);
  if (rc != MDB_SUCCESS) return to_status(rc, where("opening the store"));
  offset_.store(offset, std::memory_order_release);
  failure_ = std::move(failure);
  format_recorded_ = has_format;
  if (has_retention) recorded_retention_ = retention;
  return status::ok();
}

status view_store::impl::begin_write(txn_guard& txn) {
  if (status sticky = env_.sticky_error(); !sticky.is_ok()) return sticky;
  // MDB_NOMETASYNC (LMDB takes it per write transaction): the data pages are
  // synced, the meta page that makes the commit visible after a power loss is
  // not, so a power loss may undo the view's last commits but never tears
  // them. A view is derived from the already durable log and resumes from the
  // offset it finds, so this keeps exactly-once while halving its syncs.
  int rc = txn.begin(env_.handle(), MDB_NOMETASYNC);
  return rc == MDB_SUCCESS ? status::ok() : write_error(rc, where("beginning a write"));
}

status view_store::impl::write_error(int rc, const std::string& what) {
  status st = to_status(rc, what);
  if (rc == MDB_PANIC)
    env_.fail({errc::io_error, "the data directory failed (" + st.message() +
                                   "); writes are refused until the process restarts"});
  return st;
}

status view_store::impl::check_commit(const std::vector<offset_changes>& batch,
                                      uint64_t new_offset,
                                      const std::vector<dead_letter>& dead_letters,
                                      const std::vector<key_change>& private_changes) const {
  const uint64_t current = offset();
  auto invalid = [&](const std::string& why) {
    return status{errc::invalid_parameter, "commit to view " + label_ + " at offset " +
                                               std::to_string(current) + " refused: " + why};
  };
  if (new_offset < current)
    return invalid("the new offset " + std::to_string(new_offset) + " is behind");
  uint64_t previous = current;
  for (const auto& entry : batch) {
    if (entry.offset <= previous || entry.offset > new_offset)
      return invalid("batch offset " + std::to_string(entry.offset) +
                     " is not ascending within (offset, " + std::to_string(new_offset) + "]");
    previous = entry.offset;
    for (const auto& change : entry.changes)
      if (change.value && change.value->empty())
        return invalid("an empty value (not JSON) for key '" + change.key + "'");
  }
  for (const auto& letter : dead_letters)
    if (letter.offset <= current || letter.offset > new_offset)
      return invalid("dead letter offset " + std::to_string(letter.offset) +
                     " is not within (offset, " + std::to_string(new_offset) + "]");
  if (!private_changes.empty() && new_offset == current)
    return invalid("private changes need a new offset");
  for (const auto& change : private_changes)
    if (change.value && change.value->empty())
      return invalid("an empty value (not JSON) for private key '" + change.key + "'");
  return status::ok();
}

int view_store::impl::write_batch(MDB_txn* txn, const std::vector<offset_changes>& batch) {
  for (const auto& entry : batch) {
    if (entry.changes.empty()) continue;
    std::vector<key_change> changes = last_change_per_key(entry.changes);
    for (const auto& change : changes)
      if (int rc = state_apply(txn, state_, change); rc != MDB_SUCCESS) return rc;
    std::string bytes = encode_changes(changes);
    MDB_val k = offset_val(entry.offset), v = to_val(bytes);
    // Offsets only grow, so the changelog is appended; an existing entry
    // beyond the offset would mean the store disagrees with itself.
    int rc = mdb_put(txn, changes_, &k, &v, MDB_APPEND);
    if (rc != MDB_SUCCESS) return rc == MDB_KEYEXIST ? MDB_CORRUPTED : rc;
  }
  return MDB_SUCCESS;
}

int view_store::impl::write_dead_letters(MDB_txn* txn,
                                         const std::vector<dead_letter>& dead_letters) {
  for (const auto& letter : dead_letters) {
    MDB_val k = offset_val(letter.offset), v = to_val(letter.error);
    if (int rc = mdb_put(txn, dead_, &k, &v, 0); rc != MDB_SUCCESS) return rc;
  }
  return MDB_SUCCESS;
}

int view_store::impl::write_private(MDB_txn* txn,
                                    const std::vector<key_change>& private_changes) {
  for (const auto& change : private_changes)
    if (int rc = state_apply(txn, private_, change); rc != MDB_SUCCESS) return rc;
  return MDB_SUCCESS;
}

// Deletes at most prune_per_commit changelog entries with offset <=
// new_offset - retention and raises the low-water mark to the last one.
int view_store::impl::prune(MDB_txn* txn, uint64_t new_offset) {
  const uint64_t retention = options_.changelog_retention;
  if (retention == 0 || new_offset <= retention || options_.prune_per_commit == 0)
    return MDB_SUCCESS;
  const uint64_t cutoff = new_offset - retention;
  MDB_cursor* cursor = nullptr;
  if (int rc = mdb_cursor_open(txn, changes_, &cursor); rc != MDB_SUCCESS) return rc;
  unsigned pruned = 0;
  uint64_t last = 0;
  MDB_val k, v;
  int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST);
  while (rc == MDB_SUCCESS && pruned < options_.prune_per_commit) {
    uint64_t offset = 0;
    if (!get_offset_key(k, offset)) rc = MDB_CORRUPTED;
    if (rc != MDB_SUCCESS || offset > cutoff) break;
    rc = mdb_cursor_del(cursor, 0);
    if (rc != MDB_SUCCESS) break;
    ++pruned;
    last = offset;
    rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cursor);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return rc;
  if (pruned == 0) return MDB_SUCCESS;
  uint64_t low_water = 0;
  if (int get = get_meta_u64(txn, meta_, meta_low_water, low_water); get != MDB_SUCCESS)
    return get;
  return put_meta_u64(txn, meta_, meta_low_water, std::max(low_water, last));
}

status view_store::impl::commit(const std::vector<offset_changes>& batch, uint64_t new_offset,
                                const std::vector<dead_letter>& dead_letters,
                                const std::vector<key_change>& private_changes) {
  if (status st = check_commit(batch, new_offset, dead_letters, private_changes); !st.is_ok())
    return st;
  if (new_offset == offset()) return env_.sticky_error();  // nothing to change
  txn_guard txn;
  if (status st = begin_write(txn); !st.is_ok()) return st;
  int rc = write_batch(txn.get(), batch);
  if (rc == MDB_SUCCESS) rc = write_dead_letters(txn.get(), dead_letters);
  if (rc == MDB_SUCCESS) rc = write_private(txn.get(), private_changes);
  if (rc == MDB_SUCCESS) rc = put_meta_u64(txn.get(), meta_, meta_offset, new_offset);
  if (rc == MDB_SUCCESS) rc = prune(txn.get(), new_offset);
  if (rc == MDB_SUCCESS && !format_recorded_)
    rc = put_meta_u64(txn.get(), meta_, meta_format, view_format);
  if (rc == MDB_SUCCESS && recorded_retention_ != options_.changelog_retention)
    rc = put_meta_u64(txn.get(), meta_, meta_retention, options_.changelog_retention);
  if (rc != MDB_SUCCESS) return write_error(rc, where("committing offset " +
                                                      std::to_string(new_offset)));
  if (status st = env_.commit(txn); !st.is_ok()) return st;
  offset_.store(new_offset, std::memory_order_release);
  format_recorded_ = true;
  recorded_retention_ = options_.changelog_retention;
  return status::ok();
}

result<view_snapshot> view_store::impl::snapshot() const {
  txn_guard txn;
  int rc = txn.begin(env_.handle(), MDB_RDONLY);
  uint64_t offset = 0;
  if (rc == MDB_SUCCESS) rc = get_meta_u64(txn.get(), meta_, meta_offset, offset);
  if (rc != MDB_SUCCESS) return to_status(rc, where("taking a snapshot"));
  auto snapshot = std::make_unique<view_snapshot::impl>(txn.get(), state_, private_);
  txn.release();  // owned by the snapshot now
  return view_snapshot(std::move(snapshot), offset);
}

result<changelog_page> view_store::impl::changes_since(uint64_t from, size_t limit) const {
  txn_guard txn;
  int rc = txn.begin(env_.handle(), MDB_RDONLY);
  changelog_page page;
  uint64_t low_water = 0;
  if (rc == MDB_SUCCESS) rc = get_meta_u64(txn.get(), meta_, meta_offset, page.view_offset);
  if (rc == MDB_SUCCESS) rc = get_meta_u64(txn.get(), meta_, meta_low_water, low_water);
  if (rc != MDB_SUCCESS) return to_status(rc, where("reading the changelog"));
  page.served = from >= low_water;
  if (!page.served || limit == 0 || from >= page.view_offset) return page;

  MDB_cursor* cursor = nullptr;
  if (rc = mdb_cursor_open(txn.get(), changes_, &cursor); rc != MDB_SUCCESS)
    return to_status(rc, where("reading the changelog"));
  uint64_t first = from + 1;
  MDB_val k = offset_val(first), v;
  rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
  while (rc == MDB_SUCCESS && page.entries.size() < limit) {
    offset_changes entry;
    if (!get_offset_key(k, entry.offset) || !decode_changes(to_view(v), entry.changes)) {
      rc = MDB_CORRUPTED;
      break;
    }
    page.entries.push_back(std::move(entry));
    rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cursor);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return to_status(rc, where("reading the changelog"));
  return page;
}

status view_store::impl::set_failure(std::optional<view_failure> failure) {
  txn_guard txn;
  if (status st = begin_write(txn); !st.is_ok()) return st;
  MDB_val k = to_val(meta_failure);
  int rc = MDB_SUCCESS;
  if (failure) {
    std::string bytes = fixed64(failure->offset) + failure->error;
    MDB_val v = to_val(bytes);
    rc = mdb_put(txn.get(), meta_, &k, &v, 0);
  } else {
    rc = mdb_del(txn.get(), meta_, &k, nullptr);
    if (rc == MDB_NOTFOUND) rc = MDB_SUCCESS;
  }
  if (rc != MDB_SUCCESS) return write_error(rc, where("recording the failure"));
  if (status st = env_.commit(txn); !st.is_ok()) return st;
  std::lock_guard<std::mutex> guard{mu_};
  failure_ = std::move(failure);
  return status::ok();
}

result<std::vector<dead_letter>> view_store::impl::dead_letters() const {
  txn_guard txn;
  MDB_cursor* cursor = nullptr;
  int rc = txn.begin(env_.handle(), MDB_RDONLY);
  if (rc == MDB_SUCCESS) rc = mdb_cursor_open(txn.get(), dead_, &cursor);
  if (rc != MDB_SUCCESS) return to_status(rc, where("reading dead letters"));
  std::vector<dead_letter> letters;
  MDB_val k, v;
  rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST);
  while (rc == MDB_SUCCESS) {
    dead_letter letter;
    if (!get_offset_key(k, letter.offset)) {
      rc = MDB_CORRUPTED;
      break;
    }
    letter.error.assign(to_view(v));
    letters.push_back(std::move(letter));
    rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cursor);
  if (rc != MDB_NOTFOUND) return to_status(rc, where("reading dead letters"));
  return letters;
}

status view_store::impl::reset() {
  txn_guard txn;
  if (status st = begin_write(txn); !st.is_ok()) return st;
  int rc = MDB_SUCCESS;
  for (MDB_dbi dbi : {state_, changes_, meta_, dead_, private_})
    if (rc == MDB_SUCCESS) rc = mdb_drop(txn.get(), dbi, 0);
  if (rc != MDB_SUCCESS) return write_error(rc, where("resetting"));
  if (status st = env_.commit(txn); !st.is_ok()) return st;
  offset_.store(0, std::memory_order_release);
  format_recorded_ = false;
  recorded_retention_.reset();
  std::lock_guard<std::mutex> guard{mu_};
  failure_.reset();
  return status::ok();
}

// ---------------------------------------------------------------------------
// view_store

result<std::unique_ptr<view_store>> view_store::open(environment& env, const std::string& name,
                                                     uint32_t version,
                                                     view_store_options options) {
  if (name.empty() || name.find('\0') != std::string::npos)
    return status{errc::invalid_parameter, "a view name must be non-empty and hold no NUL byte"};
  const std::string label = name + "/" + std::to_string(version);
  const std::string prefix = "view/" + label + "/";
  auto store_impl = std::make_unique<impl>(env, label, options);
  struct db {
    const char* suffix;
    unsigned flags;
    MDB_dbi* dbi;
  };
  for (const db& d : {db{"state", 0u, &store_impl->state_},
                      db{"changes", unsigned{MDB_INTEGERKEY}, &store_impl->changes_},
                      db{"meta", 0u, &store_impl->meta_},
                      db{"dead", unsigned{MDB_INTEGERKEY}, &store_impl->dead_},
                      db{"private", 0u, &store_impl->private_}}) {
    auto dbi = env.database(prefix + d.suffix, d.flags);
    if (!dbi) return dbi.error();
    *d.dbi = *dbi;
  }
  if (status st = store_impl->load(); !st.is_ok()) return st;
  return std::unique_ptr<view_store>(new view_store(name, version, std::move(store_impl)));
}

view_store::view_store(std::string name, uint32_t version, std::unique_ptr<impl> impl)
    : name_(std::move(name)), version_(version), impl_(std::move(impl)) {}

view_store::~view_store() = default;

status view_store::commit(const std::vector<offset_changes>& batch, uint64_t new_offset,
                          const std::vector<dead_letter>& dead_letters,
                          const std::vector<key_change>& private_changes) {
  return impl_->commit(batch, new_offset, dead_letters, private_changes);
}

uint64_t view_store::offset() const { return impl_->offset(); }

result<view_snapshot> view_store::snapshot() const { return impl_->snapshot(); }

result<changelog_page> view_store::changes_since(uint64_t from, size_t limit) const {
  return impl_->changes_since(from, limit);
}

status view_store::set_failure(std::optional<view_failure> failure) {
  return impl_->set_failure(std::move(failure));
}

std::optional<view_failure> view_store::failure() const { return impl_->failure(); }

result<std::vector<dead_letter>> view_store::dead_letters() const {
  return impl_->dead_letters();
}

status view_store::reset() { return impl_->reset(); }

}  // namespace derive
