#include "core/view_store.hpp"

#include <lmdb.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "core/changelog_codec.hpp"
#include "core/coding.hpp"
#include "core/lmdb_util.hpp"
#include "core/state_keys.hpp"
#include "core/view_meta.hpp"
#include "core/view_names.hpp"
#include "core/view_snapshot_impl.hpp"

// Storage format: docs/storage.md, "Views".

namespace derive {
namespace {

static_assert(sizeof(size_t) == sizeof(uint64_t),
              "MDB_INTEGERKEY offsets need a 64-bit size_t");

// The changes of `changes` to write: each key's last change (at its
// position); an offset holds each key at most once. Without a repeated key
// that is `changes` itself, else `scratch`, filled.
const std::vector<key_change>& last_change_per_key(const std::vector<key_change>& changes,
                                                   std::vector<key_change>& scratch) {
  if (changes.size() < 2) return changes;
  // batch_txn hands over an offset's changes in key order, each key once:
  // checked in one pass, without a map.
  if (std::adjacent_find(changes.begin(), changes.end(), [](const auto& a, const auto& b) {
        return a.key >= b.key;
      }) == changes.end())
    return changes;
  std::unordered_map<std::string_view, size_t> last;
  for (size_t i = 0; i < changes.size(); ++i) last[changes[i].key] = i;
  if (last.size() == changes.size()) return changes;
  scratch.clear();
  scratch.reserve(last.size());
  for (size_t i = 0; i < changes.size(); ++i)
    if (last[changes[i].key] == i) scratch.push_back(changes[i]);
  return scratch;
}

// Copies the records of `from` into the empty `to` in key order while
// `take(k, v)` says MDB_SUCCESS (MDB_NOTFOUND: stop there; else an error).
template <class Take>
int copy_records(MDB_txn* txn, MDB_dbi from, MDB_dbi to, Take take) {
  cursor_guard src, dst;
  int rc = src.open(txn, from);
  if (rc == MDB_SUCCESS) rc = dst.open(txn, to);
  MDB_val k, v;
  if (rc == MDB_SUCCESS) rc = mdb_cursor_get(src.get(), &k, &v, MDB_FIRST);
  while (rc == MDB_SUCCESS) {
    if (rc = take(k, v); rc != MDB_SUCCESS) break;
    if (rc = mdb_cursor_put(dst.get(), &k, &v, MDB_APPEND); rc != MDB_SUCCESS) return rc;
    rc = mdb_cursor_get(src.get(), &k, &v, MDB_NEXT);
  }
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

// Copies every record of `from` into the empty `to` (same key order).
int copy_database(MDB_txn* txn, MDB_dbi from, MDB_dbi to) {
  return copy_records(txn, from, to, [](const MDB_val&, const MDB_val&) { return MDB_SUCCESS; });
}

// Deletes the records of an MDB_INTEGERKEY database with keys > `after`;
// adds the bytes (8 + value) deleted to `bytes`.
int delete_after(MDB_txn* txn, MDB_dbi dbi, uint64_t after, uint64_t& bytes) {
  cursor_guard c;
  if (int rc = c.open(txn, dbi); rc != MDB_SUCCESS) return rc;
  const uint64_t first = after + 1;  // uint64_val points at it
  MDB_val k = uint64_val(first), v;
  int rc = mdb_cursor_get(c.get(), &k, &v, MDB_SET_RANGE);
  while (rc == MDB_SUCCESS) {
    bytes += sizeof(uint64_t) + v.mv_size;
    if (rc = mdb_cursor_del(c.get(), 0); rc != MDB_SUCCESS) return rc;
    rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT);
  }
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

// The first 16 bytes of a key as two big-endian numbers (zero-padded): two
// keys whose heads differ compare as their heads do, so a sort reads the
// keys' bytes (a cache miss each) only to order keys that share 16 bytes.
struct key_head {
  uint64_t hi = 0, lo = 0;
  explicit key_head(std::string_view key) {
    unsigned char b[16] = {};
    std::memcpy(b, key.data(), std::min<size_t>(key.size(), sizeof b));
    for (int i = 0; i < 8; ++i) hi = hi << 8 | b[i];
    for (int i = 8; i < 16; ++i) lo = lo << 8 | b[i];
  }
  bool operator==(const key_head& o) const { return hi == o.hi && lo == o.lo; }
  bool operator!=(const key_head& o) const { return !(*this == o); }
  bool operator<(const key_head& o) const { return hi != o.hi ? hi < o.hi : lo < o.lo; }
};

// Calls keep(c) for each change c of batch entry `e` that is not in
// `dropped` (ascending, as blind changes are; `next` walks it across entries).
template <class Keep>
void for_each_kept(const std::vector<key_change>& changes, uint32_t e,
                   const std::vector<blind_change>& dropped, size_t& next, Keep keep) {
  for (uint32_t c = 0; c < changes.size(); ++c) {
    if (next < dropped.size() && dropped[next] == blind_change{e, c}) {
      ++next;
      continue;
    }
    keep(c);
  }
}

constexpr std::string_view meta_checkpoint_prefix = "checkpoint/";

std::string checkpoint_record_key(unsigned slot) {
  return std::string(meta_checkpoint_prefix) + std::to_string(slot);
}

}  // namespace

// One checkpoint slot: its copies of state and private state, and what
// meta says of it (offset 0: empty).
struct checkpoint_slot {
  unsigned index = 0;
  MDB_dbi state = 0, private_state = 0;
  uint64_t offset = 0;
  std::string digest;  // raw
};

class view_store::impl {
 public:
  impl(environment& env, std::string label, view_store_options options)
      : env_(env), label_(std::move(label)), options_(options) {}
  ~impl() { env_.forget_reopen(this); }

  // Opens the handles of the store's databases (`prefix` + state, changes, ...).
  status open_handles(const std::string& prefix);
  // Finds the checkpoint slots on disk (and those options_ asks for) and
  // opens their databases.
  status open_checkpoint_slots();

  // Loads the durable meta data (offset, failure, retention).
  status load();

  // `blind`: view_store::commit's; `dropped` receives the blind changes
  // that changed nothing (ascending), left out of the changelog.
  status commit(const std::vector<offset_changes>& batch, const std::vector<blind_change>& blind,
                std::vector<blind_change>& dropped, uint64_t new_offset,
                const std::vector<dead_letter>& dead_letters,
                const std::vector<key_change>& private_changes);
  status check_commit(const std::vector<offset_changes>& batch, uint64_t new_offset,
                      const std::vector<dead_letter>& dead_letters,
                      const std::vector<key_change>& private_changes) const;
  result<view_snapshot> snapshot() const;
  result<changelog_page> changes_since(uint64_t from, size_t limit) const;
  status set_failure(std::optional<view_failure> failure);
  status step();
  std::optional<view_failure> failure() const {
    std::lock_guard<std::mutex> guard{mu_};
    return failure_;
  }
  result<std::vector<dead_letter>> dead_letters() const;
  status reset(uint64_t resume_floor);
  result<uint64_t> resume_floor() const;
  std::vector<uint64_t> checkpoints() const;
  uint64_t checkpoint_at_or_before(uint64_t at) const;
  result<uint64_t> restore(uint64_t keep_through, uint64_t resume_floor);
  result<uint64_t> restore_from(const impl& source, uint64_t keep_through, bool with_changelog);
  uint64_t offset() const { return offset_.load(std::memory_order_acquire); }
  uint64_t changelog_bytes() const { return changelog_bytes_.load(std::memory_order_acquire); }
  view_digest digest() const {
    std::lock_guard<std::mutex> guard{mu_};
    return digest_;
  }

  MDB_dbi state_ = 0, changes_ = 0, meta_ = 0, dead_ = 0, private_ = 0;
  // Every slot on disk, and slots [0, checkpoints_kept) when checkpoints are
  // taken; offsets guarded by mu_ (written by the single writer).
  std::vector<checkpoint_slot> slots_;

 private:
  // Copies state and private state into a slot when the commit to
  // `new_offset` is due for one; `taken`: the slot written (else -1).
  int maybe_checkpoint(MDB_txn* txn, uint64_t new_offset, int& taken);
  // Empties slot `s` and its meta record.
  int clear_slot(MDB_txn* txn, const checkpoint_slot& s);
  int load_slots(MDB_txn* txn);
  // Begins a write transaction unless the environment refuses writes.
  status begin_write(txn_guard& txn);
  // Commits, or maps the failure `rc` of a call inside the write transaction
  // (which the guard then aborts).
  status finish_write(txn_guard& txn, int rc, const std::string& what);
  std::string where(const std::string& what) const { return what + " of view " + label_; }
  // Writes the state, then appends the batch's entries but the `dropped`
  // blind changes; adds the entries' bytes to `total`, counts them.
  int write_batch(MDB_txn* txn, const std::vector<offset_changes>& batch,
                  const std::vector<blind_change>& blind, std::vector<blind_change>& dropped,
                  uint64_t& total, uint64_t& entries);
  int write_dead_letters(MDB_txn* txn, const std::vector<dead_letter>& dead_letters);
  int write_private(MDB_txn* txn, const std::vector<key_change>& private_changes);
  // Writes each key's last change of the batch to the state, updating
  // pending_digest_; adds to `dropped` the blind changes that change nothing.
  int write_state(MDB_txn* txn, const std::vector<offset_changes>& batch,
                  const std::vector<blind_change>& blind, std::vector<blind_change>& dropped);
  // The digest of every key of the state database, walked once.
  int compute_digest(MDB_txn* txn, view_digest& out) const;
  // Prunes per the retention (at most `budget` entries); updates `bytes`.
  int prune(MDB_txn* txn, uint64_t new_offset, uint64_t budget, uint64_t& bytes);
  // The offset up to which entries are older than changelog_max_age (0:
  // none); records a new age mark when due and drops used marks.
  int age_cutoff(MDB_txn* txn, uint64_t new_offset, uint64_t& cutoff);
  int64_t now() const;

  environment& env_;
  const std::string label_;  // "name/version", for messages
  const view_store_options options_;
  std::atomic<uint64_t> offset_{0};
  // What meta holds; used by the single writer only.
  bool format_recorded_ = false;
  std::optional<uint64_t> recorded_retention_;
  bool bytes_recorded_ = false;
  std::vector<age_mark> marks_;  // as in meta, ascending
  std::vector<age_mark> pending_marks_;  // marks_ once the commit succeeds
  std::atomic<uint64_t> changelog_bytes_{0};
  bool digest_recorded_ = false;
  view_digest pending_digest_;  // digest_ plus the changes of the commit under way
  mutable std::mutex mu_;  // guards failure_ and digest_
  std::optional<view_failure> failure_;
  view_digest digest_;
};

status view_store::impl::load() {
  txn_guard txn;
  view_meta meta;
  int rc = env_.begin_txn(txn, MDB_RDONLY);
  if (rc == MDB_SUCCESS) rc = read_view_meta(txn.get(), meta_, meta);
  if (rc == MDB_SUCCESS && meta.format && *meta.format != view_format)
    return {errc::corruption, where("opening the store") + ": stored format " +
                                  std::to_string(*meta.format) + ", this build reads format " +
                                  std::to_string(view_format)};
  if (rc != MDB_SUCCESS) return decode_status(rc, where("opening the store"));
  offset_.store(meta.offset, std::memory_order_release);
  failure_ = std::move(meta.failure);
  format_recorded_ = meta.format.has_value();
  recorded_retention_ = meta.retention;
  rc = read_age_marks(txn.get(), meta_, marks_);
  uint64_t bytes = meta.changelog_bytes.value_or(0);
  bytes_recorded_ = meta.changelog_bytes.has_value();
  if (rc == MDB_SUCCESS && !bytes_recorded_) {
    // Written before the running total existed: count once (the next commit
    // records it).
    cursor_guard cursor;
    rc = cursor.open(txn.get(), changes_);
    MDB_val k, v;
    if (rc == MDB_SUCCESS) rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST);
    while (rc == MDB_SUCCESS) {
      bytes += k.mv_size + v.mv_size;
      rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND) rc = MDB_SUCCESS;
  }
  view_digest digest;
  digest_recorded_ = meta.digest.has_value();
  if (rc == MDB_SUCCESS && digest_recorded_) digest.assign_raw(*meta.digest);
  // Written before digests existed: computed once (the next commit records it).
  if (rc == MDB_SUCCESS && !digest_recorded_) rc = compute_digest(txn.get(), digest);
  if (rc == MDB_SUCCESS) rc = load_slots(txn.get());
  if (rc != MDB_SUCCESS) return decode_status(rc, where("opening the store"));
  changelog_bytes_.store(bytes, std::memory_order_release);
  digest_ = digest;
  return status::ok();
}

int view_store::impl::load_slots(MDB_txn* txn) {
  for (auto& slot : slots_) {
    const std::string key = checkpoint_record_key(slot.index);
    MDB_val k = to_val(key), v;
    int rc = mdb_get(txn, meta_, &k, &v);
    if (rc == MDB_NOTFOUND) continue;
    if (rc != MDB_SUCCESS) return rc;
    std::string_view value = to_view(v);
    if (value.size() < 8) return MDB_CORRUPTED;
    slot.offset = decode_fixed64(value.data());
    slot.digest = std::string(value.substr(8));
  }
  return MDB_SUCCESS;
}

int view_store::impl::clear_slot(MDB_txn* txn, const checkpoint_slot& s) {
  int rc = mdb_drop(txn, s.state, 0);
  if (rc == MDB_SUCCESS) rc = mdb_drop(txn, s.private_state, 0);
  const std::string key = checkpoint_record_key(s.index);
  MDB_val k = to_val(key);
  if (rc == MDB_SUCCESS) rc = mdb_del(txn, meta_, &k, nullptr);
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

int view_store::impl::maybe_checkpoint(MDB_txn* txn, uint64_t new_offset, int& taken) {
  taken = -1;
  const uint64_t every = options_.checkpoint_every;
  const size_t kept = std::min<size_t>(options_.checkpoints_kept, slots_.size());
  if (every == 0 || kept == 0) return MDB_SUCCESS;
  uint64_t newest = 0;
  for (const auto& s : slots_) newest = std::max(newest, s.offset);
  if (new_offset < newest + every) return MDB_SUCCESS;
  size_t pick = 0;  // an empty slot, else the oldest
  for (size_t i = 1; i < kept; ++i)
    if (slots_[i].offset < slots_[pick].offset) pick = i;
  const auto& s = slots_[pick];
  int rc = clear_slot(txn, s);
  if (rc == MDB_SUCCESS) rc = copy_database(txn, state_, s.state);
  if (rc == MDB_SUCCESS) rc = copy_database(txn, private_, s.private_state);
  if (rc != MDB_SUCCESS) return rc;
  std::string value;
  put_fixed64(value, new_offset);
  value += pending_digest_.raw();
  const std::string key = checkpoint_record_key(s.index);
  MDB_val k = to_val(key), v = to_val(value);
  if (rc = mdb_put(txn, meta_, &k, &v, 0); rc != MDB_SUCCESS) return rc;
  taken = static_cast<int>(pick);
  return MDB_SUCCESS;
}

int view_store::impl::compute_digest(MDB_txn* txn, view_digest& out) const {
  out = {};
  state_cursor cursor;
  int rc = cursor.open(txn, state_);
  if (rc == MDB_SUCCESS) rc = cursor.seek("");
  while (rc == MDB_SUCCESS && cursor.valid()) {
    out.add(cursor.key(), cursor.value());
    rc = cursor.next();
  }
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

int64_t view_store::impl::now() const {
  if (options_.clock) return options_.clock();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

status view_store::impl::begin_write(txn_guard& txn) {
  // MDB_NOMETASYNC (LMDB takes it per write transaction): where the
  // environment flushes its commits (the views' of a runtime with processors,
  // tests), the data pages are synced and the meta page that makes the commit
  // visible after a power loss is not, so a power loss may undo the view's
  // last commits but never tears them. The runtime's views' environment
  // usually flushes nothing (environment::open_recomputable; docs/storage.md).
  // A view is derived from the already durable log and resumes from the
  // offset it finds, so either keeps exactly-once.
  return env_.begin_write(txn, where("beginning a write"), MDB_NOMETASYNC);
}

status view_store::impl::finish_write(txn_guard& txn, int rc, const std::string& what) {
  if (rc == MDB_CORRUPTED) return decode_status(rc, what);
  if (rc != MDB_SUCCESS) return env_.check(rc, what);
  return env_.commit(txn);
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

int view_store::impl::write_batch(MDB_txn* txn, const std::vector<offset_changes>& batch,
                                  const std::vector<blind_change>& blind,
                                  std::vector<blind_change>& dropped, uint64_t& total,
                                  uint64_t& entries) {
  // The state first: it decides which blind changes stay in the changelog.
  if (int rc = write_state(txn, batch, blind, dropped); rc != MDB_SUCCESS) return rc;
  cursor_guard changelog;  // one cursor: each append lands at its end
  if (int rc = changelog.open(txn, changes_); rc != MDB_SUCCESS) return rc;
  std::vector<key_change> scratch, kept;
  std::string bytes;
  size_t next_dropped = 0;  // into `dropped`, ascending like the batch
  for (uint32_t e = 0; e < batch.size(); ++e) {
    const auto& entry = batch[e];
    const std::vector<key_change>* changes = &entry.changes;
    if (next_dropped < dropped.size() && dropped[next_dropped].entry == e) {
      kept.clear();
      for_each_kept(entry.changes, e, dropped, next_dropped,
                    [&](uint32_t c) { kept.push_back(entry.changes[c]); });
      changes = &kept;
    }
    if (changes->empty()) continue;
    changes = &last_change_per_key(*changes, scratch);
    bytes.clear();
    encode_changelog_entry(*changes, bytes);
    MDB_val k = uint64_val(entry.offset), v = to_val(bytes);
    // Offsets only grow, so the changelog is appended; an existing entry
    // beyond the offset would mean the store disagrees with itself.
    int rc = mdb_cursor_put(changelog.get(), &k, &v, MDB_APPEND);
    if (rc != MDB_SUCCESS) return rc == MDB_KEYEXIST ? MDB_CORRUPTED : rc;
    total += sizeof entry.offset + v.mv_size;
    ++entries;
  }
  return MDB_SUCCESS;
}

int view_store::impl::write_state(MDB_txn* txn, const std::vector<offset_changes>& batch,
                                  const std::vector<blind_change>& blind,
                                  std::vector<blind_change>& dropped) {
  // The state after the batch is each key's last change, whatever came
  // before it within the batch, and so is the digest (a sum over the final
  // state): write those only, in key order through one cursor. A stable sort
  // keeps each key's changes in batch order: its last one ends its run.
  struct item {
    key_head head;  // orders most pairs of keys without reading them
    const key_change* change;
    uint32_t entry;
    bool blind;
    bool operator<(const item& o) const {
      return head != o.head ? head < o.head : change->key < o.change->key;
    }
    bool same_key(const item& o) const { return head == o.head && change->key == o.change->key; }
  };
  std::vector<item> all;
  size_t n = 0;
  for (const auto& entry : batch) n += entry.changes.size();
  all.reserve(n);
  size_t next_blind = 0;
  for (uint32_t e = 0; e < batch.size(); ++e) {
    const auto& changes = batch[e].changes;
    for (uint32_t c = 0; c < changes.size(); ++c) {
      const bool is_blind =
          next_blind < blind.size() && blind[next_blind] == blind_change{e, c};
      if (is_blind) ++next_blind;
      all.push_back({key_head(changes[c].key), &changes[c], e, is_blind});
    }
  }
  std::stable_sort(all.begin(), all.end());
  state_writer writer;
  if (int rc = writer.open(txn, state_); rc != MDB_SUCCESS) return rc;
  std::string old;  // reused
  size_t first = 0;  // the first change of the current key's run
  for (size_t i = 0; i < all.size(); ++i) {
    if (i > 0 && !all[i].same_key(all[i - 1])) first = i;
    if (i + 1 < all.size() && all[i + 1].same_key(all[i])) continue;
    const key_change* change = all[i].change;
    bool had_old = false;
    if (int rc = writer.replace(*change, had_old, old); rc != MDB_SUCCESS) return rc;
    // A blind change equal to the value before it is none: `old` (the
    // committed value) before the run's first, the previous change before
    // the others (equal to its own predecessor if dropped itself).
    for (size_t j = first; j <= i; ++j) {
      if (!all[j].blind) continue;
      const auto& v = all[j].change->value;
      const bool same = j == first ? (v ? had_old && old == *v : !had_old)
                                   : v == all[j - 1].change->value;
      if (same)
        dropped.push_back(
            {all[j].entry,
             static_cast<uint32_t>(all[j].change - batch[all[j].entry].changes.data())});
    }
    if (had_old) {
      if (change->value && old == *change->value) continue;
      pending_digest_.remove(change->key, old);
    }
    if (change->value) pending_digest_.add(change->key, *change->value);
  }
  std::sort(dropped.begin(), dropped.end());
  return MDB_SUCCESS;
}

int view_store::impl::write_dead_letters(MDB_txn* txn,
                                         const std::vector<dead_letter>& dead_letters) {
  for (const auto& letter : dead_letters) {
    MDB_val k = uint64_val(letter.offset), v = to_val(letter.error);
    if (int rc = mdb_put(txn, dead_, &k, &v, 0); rc != MDB_SUCCESS) return rc;
  }
  return MDB_SUCCESS;
}

int view_store::impl::write_private(MDB_txn* txn,
                                    const std::vector<key_change>& private_changes) {
  state_writer writer;  // the changes come in key order
  if (int rc = writer.open(txn, private_); rc != MDB_SUCCESS) return rc;
  for (const auto& change : private_changes)
    if (int rc = writer.apply(change); rc != MDB_SUCCESS) return rc;
  return MDB_SUCCESS;
}

int view_store::impl::age_cutoff(MDB_txn* txn, uint64_t new_offset, uint64_t& cutoff) {
  cutoff = 0;
  pending_marks_ = marks_;
  const int64_t max_age = options_.changelog_max_age.count();
  if (max_age <= 0) return MDB_SUCCESS;
  const int64_t t = now();
  // Marks at or before t - max_age: everything up to their offset expired.
  // The newest of them is kept (pruning may take several commits), older
  // ones are dropped, so at most ~33 marks exist.
  size_t expired = 0;
  while (expired < marks_.size() && marks_[expired].ms <= t - max_age) ++expired;
  if (expired > 0) cutoff = marks_[expired - 1].offset;
  for (size_t i = 0; i + 1 < expired; ++i)
    if (int rc = delete_age_mark(txn, meta_, marks_[i].ms); rc != MDB_SUCCESS) return rc;
  if (expired > 1)
    pending_marks_.erase(pending_marks_.begin(), pending_marks_.begin() + (expired - 1));
  const int64_t spacing = std::max<int64_t>(1, max_age / 32);
  if (marks_.empty() || t - marks_.back().ms >= spacing) {
    if (int rc = put_age_mark(txn, meta_, {t, new_offset}); rc != MDB_SUCCESS) return rc;
    if (!pending_marks_.empty() && pending_marks_.back().ms == t) pending_marks_.pop_back();
    pending_marks_.push_back({t, new_offset});
  }
  return MDB_SUCCESS;
}

// Deletes, oldest first and at most `budget`, the changelog entries that the
// retention expires: offset <= new_offset - changelog_retention, or older
// than changelog_max_age, or while the changelog holds more bytes than its
// limit (never the newest entry); raises the low-water mark to the last one.
int view_store::impl::prune(MDB_txn* txn, uint64_t new_offset, uint64_t budget,
                            uint64_t& bytes) {
  uint64_t cutoff = 0;
  const uint64_t retention = options_.changelog_retention;
  if (retention > 0 && new_offset > retention) cutoff = new_offset - retention;
  uint64_t aged = 0;
  if (int rc = age_cutoff(txn, new_offset, aged); rc != MDB_SUCCESS) return rc;
  cutoff = std::max(cutoff, aged);
  std::optional<uint64_t> byte_limit;
  if (options_.changelog_max_bytes > 0) {
    MDB_stat st;
    if (int rc = mdb_stat(txn, state_, &st); rc != MDB_SUCCESS) return rc;
    double state_bytes = static_cast<double>(st.ms_psize) *
                         static_cast<double>(st.ms_branch_pages + st.ms_leaf_pages +
                                             st.ms_overflow_pages);
    byte_limit = std::max<uint64_t>(
        options_.changelog_max_bytes,
        static_cast<uint64_t>(options_.changelog_state_fraction * state_bytes));
  }
  if (budget == 0 || (cutoff == 0 && (!byte_limit || bytes <= *byte_limit)))
    return MDB_SUCCESS;
  uint64_t pruned = 0;
  uint64_t last = 0;
  {
    cursor_guard cursor;
    if (int rc = cursor.open(txn, changes_); rc != MDB_SUCCESS) return rc;
    MDB_val k, v;
    int rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST);
    while (rc == MDB_SUCCESS && pruned < budget) {
      uint64_t offset = 0;
      if (!get_native_uint64(k, offset)) rc = MDB_CORRUPTED;
      if (rc != MDB_SUCCESS) break;
      const uint64_t size = k.mv_size + v.mv_size;
      bool expired = offset <= cutoff || (byte_limit && bytes > *byte_limit);
      if (!expired) break;
      MDB_val nk, nv;  // the newest entry stays (byte limit)
      if (offset > cutoff) {
        int peek = mdb_cursor_get(cursor.get(), &nk, &nv, MDB_NEXT);
        if (peek == MDB_NOTFOUND) break;
        if (peek != MDB_SUCCESS) {
          rc = peek;
          break;
        }
        if (rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_PREV); rc != MDB_SUCCESS) break;
      }
      rc = mdb_cursor_del(cursor.get(), 0);
      if (rc != MDB_SUCCESS) break;
      ++pruned;
      last = offset;
      bytes -= std::min(bytes, size);
      rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT);
    }
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return rc;
  }
  if (pruned == 0) return MDB_SUCCESS;
  uint64_t low_water = 0;
  if (int rc = get_fixed64_value(txn, meta_, meta_low_water, low_water); rc != MDB_SUCCESS)
    return rc;
  return put_fixed64_value(txn, meta_, meta_low_water, std::max(low_water, last));
}

status view_store::impl::commit(const std::vector<offset_changes>& batch,
                                const std::vector<blind_change>& blind,
                                std::vector<blind_change>& dropped, uint64_t new_offset,
                                const std::vector<dead_letter>& dead_letters,
                                const std::vector<key_change>& private_changes) {
  if (status st = check_commit(batch, new_offset, dead_letters, private_changes); !st.is_ok())
    return st;
  for (size_t i = 0; i < blind.size(); ++i)
    if (blind[i].entry >= batch.size() ||
        blind[i].change >= batch[blind[i].entry].changes.size() ||
        (i > 0 && !(blind[i - 1] < blind[i])))
      return status{errc::invalid_parameter,
                    "commit to view " + label_ + " refused: blind changes out of order or range"};
  if (new_offset == offset()) return env_.sticky_error();  // nothing to change
  txn_guard txn;
  if (status st = begin_write(txn); !st.is_ok()) return st;
  uint64_t bytes = changelog_bytes();
  uint64_t appended = 0;
  pending_digest_ = digest();
  dropped.clear();
  int rc = write_batch(txn.get(), batch, blind, dropped, bytes, appended);
  if (rc == MDB_SUCCESS) rc = write_dead_letters(txn.get(), dead_letters);
  if (rc == MDB_SUCCESS) rc = write_private(txn.get(), private_changes);
  if (rc == MDB_SUCCESS) rc = put_fixed64_value(txn.get(), meta_, meta_offset, new_offset);
  pending_marks_ = marks_;
  if (rc == MDB_SUCCESS && options_.prune_per_commit > 0)
    rc = prune(txn.get(), new_offset, options_.prune_per_commit + appended, bytes);
  if (rc == MDB_SUCCESS && (!bytes_recorded_ || bytes != changelog_bytes()))
    rc = put_fixed64_value(txn.get(), meta_, meta_changelog_bytes, bytes);
  if (rc == MDB_SUCCESS && (!digest_recorded_ || pending_digest_ != digest()))
    rc = put_view_digest(txn.get(), meta_, pending_digest_.raw());
  if (rc == MDB_SUCCESS && !format_recorded_)
    rc = put_fixed64_value(txn.get(), meta_, meta_format, view_format);
  if (rc == MDB_SUCCESS && recorded_retention_ != options_.changelog_retention)
    rc = put_fixed64_value(txn.get(), meta_, meta_retention, options_.changelog_retention);
  int checkpoint = -1;
  if (rc == MDB_SUCCESS) rc = maybe_checkpoint(txn.get(), new_offset, checkpoint);
  if (status st = finish_write(txn, rc, where("committing offset " + std::to_string(new_offset)));
      !st.is_ok())
    return st;
  if (checkpoint >= 0) {
    std::lock_guard<std::mutex> guard{mu_};
    slots_[checkpoint].offset = new_offset;
    slots_[checkpoint].digest = pending_digest_.raw();
  }
  offset_.store(new_offset, std::memory_order_release);
  format_recorded_ = true;
  recorded_retention_ = options_.changelog_retention;
  bytes_recorded_ = true;
  changelog_bytes_.store(bytes, std::memory_order_release);
  marks_ = std::move(pending_marks_);  // as age_cutoff left them in the transaction
  digest_recorded_ = true;
  std::lock_guard<std::mutex> guard{mu_};
  digest_ = pending_digest_;
  return status::ok();
}

result<view_snapshot> view_store::impl::snapshot() const {
  auto snapshot = std::make_unique<view_snapshot::impl>();
  int rc = env_.begin_txn(snapshot->txn, MDB_RDONLY);
  // The handles once the transaction holds its pass of the gate: a
  // compaction that reopened the databases meanwhile renumbered them.
  snapshot->state_dbi = state_;
  snapshot->private_dbi = private_;
  snapshot->meta_dbi = meta_;
  uint64_t offset = 0;
  if (rc == MDB_SUCCESS) rc = get_fixed64_value(snapshot->txn.get(), meta_, meta_offset, offset);
  if (rc != MDB_SUCCESS) return decode_status(rc, where("taking a snapshot"));
  return view_snapshot(std::move(snapshot), offset);
}

result<changelog_page> view_store::impl::changes_since(uint64_t from, size_t limit) const {
  txn_guard txn;
  int rc = env_.begin_txn(txn, MDB_RDONLY);
  changelog_page page;
  uint64_t low_water = 0;
  if (rc == MDB_SUCCESS) rc = get_fixed64_value(txn.get(), meta_, meta_offset, page.view_offset);
  if (rc == MDB_SUCCESS) rc = get_fixed64_value(txn.get(), meta_, meta_low_water, low_water);
  if (rc != MDB_SUCCESS) return decode_status(rc, where("reading the changelog"));
  page.served = from >= low_water;
  if (!page.served || limit == 0 || from >= page.view_offset) return page;

  cursor_guard cursor;
  if (rc = cursor.open(txn.get(), changes_); rc != MDB_SUCCESS)
    return decode_status(rc, where("reading the changelog"));
  const uint64_t first = from + 1;
  MDB_val k = uint64_val(first), v;
  rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_SET_RANGE);
  while (rc == MDB_SUCCESS && page.entries.size() < limit) {
    offset_changes entry;
    if (!get_native_uint64(k, entry.offset) ||
        !decode_changelog_entry(to_view(v), entry.changes)) {
      rc = MDB_CORRUPTED;
      break;
    }
    page.entries.push_back(std::move(entry));
    rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT);
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return decode_status(rc, where("reading the changelog"));
  return page;
}

status view_store::impl::step() {
  txn_guard txn;
  if (status st = begin_write(txn); !st.is_ok()) return st;
  // The stored offset written back as it is (never the in-memory one: a step
  // must not move what is durable).
  uint64_t stored = 0;
  bool found = false;
  int rc = get_fixed64_value(txn.get(), meta_, meta_offset, stored, &found);
  if (rc == MDB_SUCCESS && found) rc = put_fixed64_value(txn.get(), meta_, meta_offset, stored);
  return finish_write(txn, rc, where("stepping the transaction count"));
}

status view_store::impl::set_failure(std::optional<view_failure> failure) {
  txn_guard txn;
  if (status st = begin_write(txn); !st.is_ok()) return st;
  int rc = put_view_failure(txn.get(), meta_, failure);
  if (status st = finish_write(txn, rc, where("recording the failure")); !st.is_ok()) return st;
  std::lock_guard<std::mutex> guard{mu_};
  failure_ = std::move(failure);
  return status::ok();
}

result<std::vector<dead_letter>> view_store::impl::dead_letters() const {
  txn_guard txn;
  cursor_guard cursor;
  int rc = env_.begin_txn(txn, MDB_RDONLY);
  if (rc == MDB_SUCCESS) rc = cursor.open(txn.get(), dead_);
  if (rc != MDB_SUCCESS) return decode_status(rc, where("reading dead letters"));
  std::vector<dead_letter> letters;
  MDB_val k, v;
  rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_FIRST);
  while (rc == MDB_SUCCESS) {
    dead_letter letter;
    if (!get_native_uint64(k, letter.offset)) {
      rc = MDB_CORRUPTED;
      break;
    }
    letter.error.assign(to_view(v));
    letters.push_back(std::move(letter));
    rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT);
  }
  if (rc != MDB_NOTFOUND) return decode_status(rc, where("reading dead letters"));
  return letters;
}

result<uint64_t> view_store::impl::resume_floor() const {
  txn_guard txn;
  uint64_t floor = 0;
  int rc = env_.begin_txn(txn, MDB_RDONLY);
  if (rc == MDB_SUCCESS) rc = get_fixed64_value(txn.get(), meta_, meta_resume_floor, floor);
  if (rc != MDB_SUCCESS) return decode_status(rc, where("reading the resume floor"));
  return floor;
}

status view_store::impl::reset(uint64_t resume_floor) {
  txn_guard txn;
  if (status st = begin_write(txn); !st.is_ok()) return st;
  int rc = MDB_SUCCESS;
  for (MDB_dbi dbi : {state_, changes_, meta_, dead_, private_})
    if (rc == MDB_SUCCESS) rc = mdb_drop(txn.get(), dbi, 0);
  for (const auto& slot : slots_)
    if (rc == MDB_SUCCESS) rc = clear_slot(txn.get(), slot);
  if (rc == MDB_SUCCESS && resume_floor > 0)
    rc = put_fixed64_value(txn.get(), meta_, meta_resume_floor, resume_floor);
  if (status st = finish_write(txn, rc, where("resetting")); !st.is_ok()) return st;
  offset_.store(0, std::memory_order_release);
  format_recorded_ = false;
  recorded_retention_.reset();
  bytes_recorded_ = false;
  marks_.clear();
  changelog_bytes_.store(0, std::memory_order_release);
  digest_recorded_ = false;
  std::lock_guard<std::mutex> guard{mu_};
  failure_.reset();
  digest_ = {};
  for (auto& slot : slots_) slot.offset = 0;
  return status::ok();
}

std::vector<uint64_t> view_store::impl::checkpoints() const {
  std::lock_guard<std::mutex> guard{mu_};
  std::vector<uint64_t> out;
  for (const auto& s : slots_)
    if (s.offset > 0) out.push_back(s.offset);
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t view_store::impl::checkpoint_at_or_before(uint64_t at) const {
  uint64_t best = 0;
  for (uint64_t c : checkpoints())
    if (c <= at) best = c;
  return best;
}

result<uint64_t> view_store::impl::restore(uint64_t keep_through, uint64_t resume_floor) {
  const uint64_t at = checkpoint_at_or_before(keep_through);
  if (at == 0) {
    if (auto st = reset(resume_floor); !st) return st;
    return uint64_t{0};
  }
  const checkpoint_slot* from = nullptr;
  for (const auto& s : slots_)
    if (s.offset == at) from = &s;
  txn_guard txn;
  if (status st = begin_write(txn); !st.is_ok()) return st;
  uint64_t removed = 0, dead_removed = 0;
  int rc = mdb_drop(txn.get(), state_, 0);
  if (rc == MDB_SUCCESS) rc = mdb_drop(txn.get(), private_, 0);
  if (rc == MDB_SUCCESS) rc = copy_database(txn.get(), from->state, state_);
  if (rc == MDB_SUCCESS) rc = copy_database(txn.get(), from->private_state, private_);
  if (rc == MDB_SUCCESS) rc = delete_after(txn.get(), changes_, at, removed);
  if (rc == MDB_SUCCESS) rc = delete_after(txn.get(), dead_, at, dead_removed);
  const uint64_t bytes = changelog_bytes() - std::min(changelog_bytes(), removed);
  if (rc == MDB_SUCCESS) rc = put_fixed64_value(txn.get(), meta_, meta_offset, at);
  if (rc == MDB_SUCCESS) rc = put_fixed64_value(txn.get(), meta_, meta_changelog_bytes, bytes);
  if (rc == MDB_SUCCESS) rc = put_view_digest(txn.get(), meta_, from->digest);
  if (rc == MDB_SUCCESS) rc = put_view_failure(txn.get(), meta_, std::nullopt);
  if (rc == MDB_SUCCESS) rc = put_fixed64_value(txn.get(), meta_, meta_resume_floor, resume_floor);
  std::vector<age_mark> marks;  // a mark past C would prune rebuilt entries
  for (const auto& mark : marks_) {
    if (mark.offset <= at) marks.push_back(mark);
    else if (rc == MDB_SUCCESS) rc = delete_age_mark(txn.get(), meta_, mark.ms);
  }
  for (const auto& slot : slots_)
    if (rc == MDB_SUCCESS && slot.offset > keep_through) rc = clear_slot(txn.get(), slot);
  if (status st = finish_write(txn, rc, where("restoring the checkpoint at " + std::to_string(at)));
      !st.is_ok())
    return st;
  offset_.store(at, std::memory_order_release);
  bytes_recorded_ = true;
  changelog_bytes_.store(bytes, std::memory_order_release);
  marks_ = std::move(marks);
  digest_recorded_ = true;
  std::lock_guard<std::mutex> guard{mu_};
  failure_.reset();
  digest_.assign_raw(from->digest);
  for (auto& slot : slots_)
    if (slot.offset > keep_through) slot.offset = 0;
  return at;
}

namespace {

// Copies the records of the MDB_INTEGERKEY database `from` with keys <=
// `through` into the empty `to`; adds the bytes (key + value) to `bytes`.
int copy_through(MDB_txn* txn, MDB_dbi from, MDB_dbi to, uint64_t through, uint64_t& bytes) {
  return copy_records(txn, from, to, [&](const MDB_val& k, const MDB_val& v) {
    uint64_t offset = 0;
    if (!get_native_uint64(k, offset)) return MDB_CORRUPTED;
    if (offset > through) return MDB_NOTFOUND;
    bytes += k.mv_size + v.mv_size;
    return MDB_SUCCESS;
  });
}

}  // namespace

result<uint64_t> view_store::impl::restore_from(const impl& source, uint64_t keep_through,
                                                bool with_changelog) {
  txn_guard txn;
  if (status st = begin_write(txn); !st.is_ok()) return st;
  // The source's checkpoints as its meta records them in this transaction
  // (its writer may be taking one: the records, not its memory, are current).
  uint64_t at = 0;
  const checkpoint_slot* from = nullptr;
  std::string digest;
  int rc = MDB_SUCCESS;
  for (const auto& s : source.slots_) {
    const std::string key = checkpoint_record_key(s.index);
    MDB_val k = to_val(key), v;
    rc = mdb_get(txn.get(), source.meta_, &k, &v);
    if (rc == MDB_NOTFOUND) continue;
    if (rc != MDB_SUCCESS) break;
    std::string_view value = to_view(v);
    if (value.size() < 8) {
      rc = MDB_CORRUPTED;
      break;
    }
    const uint64_t offset = decode_fixed64(value.data());
    if (offset > at && offset <= keep_through) {
      at = offset;
      from = &s;
      digest = std::string(value.substr(8));
    }
  }
  if (rc == MDB_NOTFOUND) rc = MDB_SUCCESS;
  if (rc != MDB_SUCCESS) return decode_status(rc, where("reading the checkpoints of " + source.label_));
  if (at == 0) return uint64_t{0};  // the guard aborts: nothing written
  checkpoint_slot* into = slots_.empty() ? nullptr : &slots_.front();
  uint64_t bytes = 0, dead_bytes = 0, low_water = at;
  rc = copy_database(txn.get(), from->state, state_);
  if (rc == MDB_SUCCESS) rc = copy_database(txn.get(), from->private_state, private_);
  if (rc == MDB_SUCCESS && into) rc = copy_database(txn.get(), from->state, into->state);
  if (rc == MDB_SUCCESS && into)
    rc = copy_database(txn.get(), from->private_state, into->private_state);
  if (rc == MDB_SUCCESS && with_changelog) {
    rc = get_fixed64_value(txn.get(), source.meta_, meta_low_water, low_water);
    if (rc == MDB_SUCCESS) rc = copy_through(txn.get(), source.changes_, changes_, at, bytes);
    if (rc == MDB_SUCCESS) rc = copy_through(txn.get(), source.dead_, dead_, at, dead_bytes);
  }
  if (rc == MDB_SUCCESS) rc = put_fixed64_value(txn.get(), meta_, meta_offset, at);
  if (rc == MDB_SUCCESS) rc = put_fixed64_value(txn.get(), meta_, meta_low_water, low_water);
  if (rc == MDB_SUCCESS) rc = put_fixed64_value(txn.get(), meta_, meta_changelog_bytes, bytes);
  if (rc == MDB_SUCCESS) rc = put_view_digest(txn.get(), meta_, digest);
  std::string record;
  put_fixed64(record, at);
  record += digest;
  const std::string key = into ? checkpoint_record_key(into->index) : std::string();
  MDB_val k = to_val(key), v = to_val(record);
  if (rc == MDB_SUCCESS && into) rc = mdb_put(txn.get(), meta_, &k, &v, 0);
  if (status st = finish_write(txn, rc, where("copying the checkpoint at " + std::to_string(at) +
                                              " of " + source.label_));
      !st.is_ok())
    return st;
  offset_.store(at, std::memory_order_release);
  bytes_recorded_ = true;
  changelog_bytes_.store(bytes, std::memory_order_release);
  digest_recorded_ = true;
  std::lock_guard<std::mutex> guard{mu_};
  digest_.assign_raw(digest);
  if (into) {
    into->offset = at;
    into->digest = digest;
  }
  return at;
}

// ---------------------------------------------------------------------------
// view_store

result<std::unique_ptr<view_store>> view_store::open(environment& env, const std::string& name,
                                                     uint32_t version,
                                                     view_store_options options,
                                                     const std::string& label_or_empty) {
  if (name.empty() || name.find('\0') != std::string::npos)
    return status{errc::invalid_parameter, "a view name must be non-empty and hold no NUL byte"};
  const std::string label = label_or_empty.empty() ? view_label(name, version) : label_or_empty;
  const std::string prefix = view_db_prefix(label);
  auto store_impl = std::make_unique<impl>(env, label, options);
  if (auto st = store_impl->open_handles(prefix); !st) return st;
  if (auto st = store_impl->open_checkpoint_slots(); !st) return st;
  // An online compaction reopens the databases: the handles may change.
  auto* reopened = store_impl.get();
  env.on_reopen(reopened, [reopened, prefix] {
    status st = reopened->open_handles(prefix);
    return st.code() == errc::not_found ? status::ok() : st;  // dropped: nothing to refresh
  });
  if (status st = store_impl->load(); !st.is_ok()) return st;
  return std::unique_ptr<view_store>(
      new view_store(name, version, label, std::move(store_impl)));
}

status view_store::impl::open_handles(const std::string& prefix) {
  struct db {
    const char* suffix;
    unsigned flags;
    MDB_dbi* dbi;
  };
  for (const db& d : {db{"state", 0u, &state_}, db{"changes", unsigned{MDB_INTEGERKEY}, &changes_},
                      db{"meta", 0u, &meta_}, db{"dead", unsigned{MDB_INTEGERKEY}, &dead_},
                      db{"private", 0u, &private_}}) {
    auto dbi = env_.database(prefix + d.suffix, d.flags);
    if (!dbi) return dbi.error();
    *d.dbi = *dbi;
  }
  // Checkpoint slots (after a reopen: their refreshed handles).
  for (auto& slot : slots_) {
    auto state = env_.database(view_checkpoint_db(label_, slot.index, "state"));
    if (!state) return state.error();
    auto priv = env_.database(view_checkpoint_db(label_, slot.index, "private"));
    if (!priv) return priv.error();
    slot.state = *state;
    slot.private_state = *priv;
  }
  return status::ok();
}

status view_store::impl::open_checkpoint_slots() {
  // Those on disk, and [0, kept) when checkpoints are taken.
  const std::string ckpt_prefix = view_checkpoint_prefix(label_);
  auto on_disk = env_.database_names(ckpt_prefix);
  if (!on_disk) return on_disk.error();
  unsigned count = options_.checkpoint_every > 0 ? options_.checkpoints_kept : 0;
  for (const auto& db : *on_disk) {
    std::string_view rest = std::string_view(db).substr(ckpt_prefix.size());
    size_t digits = 0;
    while (digits < rest.size() && digits < 6 && rest[digits] >= '0' && rest[digits] <= '9')
      ++digits;
    if (digits > 0)
      count = std::max<unsigned>(count, std::stoul(std::string(rest.substr(0, digits))) + 1);
  }
  for (unsigned i = 0; i < count; ++i) {
    checkpoint_slot slot;
    slot.index = i;
    slots_.push_back(slot);
  }
  return open_handles(view_db_prefix(label_));
}

view_store::view_store(std::string name, uint32_t version, std::string label,
                       std::unique_ptr<impl> impl)
    : name_(std::move(name)), version_(version), label_(std::move(label)),
      impl_(std::move(impl)) {}

view_store::~view_store() = default;

status view_store::commit(const std::vector<offset_changes>& batch, uint64_t new_offset,
                          const std::vector<dead_letter>& dead_letters,
                          const std::vector<key_change>& private_changes) {
  std::vector<blind_change> dropped;
  return impl_->commit(batch, {}, dropped, new_offset, dead_letters, private_changes);
}

status view_store::commit(std::vector<offset_changes>& batch,
                          const std::vector<blind_change>& blind, uint64_t new_offset,
                          const std::vector<dead_letter>& dead_letters,
                          const std::vector<key_change>& private_changes) {
  std::vector<blind_change> dropped;
  status st = impl_->commit(batch, blind, dropped, new_offset, dead_letters, private_changes);
  if (!st.is_ok() || dropped.empty()) return st;
  // As committed: without the dropped changes and the entries left empty.
  size_t d = 0;
  for (uint32_t e = 0; e < batch.size() && d < dropped.size(); ++e) {
    auto& changes = batch[e].changes;
    size_t out = 0;
    for_each_kept(changes, e, dropped, d, [&](uint32_t c) {
      if (out != c) changes[out] = std::move(changes[c]);
      ++out;
    });
    changes.resize(out);
  }
  batch.erase(std::remove_if(batch.begin(), batch.end(),
                             [](const offset_changes& e) { return e.changes.empty(); }),
              batch.end());
  return st;
}

status view_store::step() { return impl_->step(); }

uint64_t view_store::offset() const { return impl_->offset(); }

result<view_snapshot> view_store::snapshot() const { return impl_->snapshot(); }

result<changelog_page> view_store::changes_since(uint64_t from, size_t limit) const {
  return impl_->changes_since(from, limit);
}

uint64_t view_store::changelog_bytes() const { return impl_->changelog_bytes(); }

view_digest view_store::digest() const { return impl_->digest(); }

status view_store::set_failure(std::optional<view_failure> failure) {
  return impl_->set_failure(std::move(failure));
}

std::optional<view_failure> view_store::failure() const { return impl_->failure(); }

result<std::vector<dead_letter>> view_store::dead_letters() const {
  return impl_->dead_letters();
}

status view_store::reset(uint64_t resume_floor) { return impl_->reset(resume_floor); }

result<uint64_t> view_store::resume_floor() const { return impl_->resume_floor(); }

std::vector<uint64_t> view_store::checkpoints() const { return impl_->checkpoints(); }

uint64_t view_store::checkpoint_at_or_before(uint64_t at) const {
  return impl_->checkpoint_at_or_before(at);
}

result<uint64_t> view_store::restore(uint64_t keep_through, uint64_t resume_floor) {
  return impl_->restore(keep_through, resume_floor);
}

result<uint64_t> view_store::restore_from(const view_store& source, uint64_t keep_through,
                                          bool with_changelog) {
  return impl_->restore_from(*source.impl_, keep_through, with_changelog);
}

}  // namespace derive
