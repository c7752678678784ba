#pragma once
// The view_txn that view code sees while a runner applies one batch.
//
// Reads go through two layers: the writes of the current input (one event or
// one upstream offset), then the batch's view of every key touched so far —
// its committed value (read from a read snapshot opened at the input's first
// read and released at the next input, so that the batch never pins pages of
// the environment) or the value written by an earlier input of the batch. Nothing touches
// LMDB's write lock: the runner hands the recorded changes to
// view_store::commit once the batch is done.
//
// An input is either kept (commit_input: its net writes, in key order, become
// the offset_changes entry of its offset) or discarded (discard_input: as if it
// never ran, for a failing event). A put of the value a key already has, and
// an erase of an absent key, record nothing: at once for a key the batch has
// read or written before, at the commit for a state key first met by a write
// (a blind write: take_blind_changes).
//
// The batch's state keys are indexed (the cache below) only from the batch's
// first read of the state (get, range, count) on: until then every state
// write is blind and costs no lookup, no cache entry and no parsed value
// (an index view such as docsearch's `search` never reads the state it
// writes). The first read indexes the changes kept so far (parsing their
// values) and the batch goes on as if it had indexed them all along.
//
// Private state (view.hpp) goes through the same two layers, read from the
// same snapshot (get_private); a discarded input drops its private writes too.
// Its kept writes are not per offset: take_private_changes gives the batch's
// net change of each private key, for the same view_store::commit.
//
// range() and count() merge the snapshot's keys under a prefix with the two
// layers (a key written in the batch or the input is seen with its written
// value, an erased one not at all). The snapshot's keys are read a page at a
// time and not cached, so a range costs the keys it walks, not the view.
//
// Memory: bytes() estimates what the batch holds (the keys it cached, their
// values, the changes kept so far); the runner ends a batch when it passes
// runtime_options::catch_up_bytes.
//
// Thread-safety: one runner thread. Not copyable.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <derive/view.hpp>
#include "core/view_store.hpp"

namespace derive {

class batch_txn final : public view_txn {
 private:
  using value = std::optional<json>;
  // A key touched in this batch: whether it exists in the committed state,
  // its committed value (private keys only: take_private_changes compares)
  // and its current value. A state key first met by a write is not read
  // (`known` false: `existed` is learnt only if a count needs it).
  struct cached {
    bool existed = false;
    bool known = true;
    value committed;
    value current;
  };
  // The cache's hash index: open addressing with linear probing in a
  // power-of-two table at most half full, the hash kept in the slot, so a
  // find is mostly one probe and one key compare (a node-based
  // unordered_map's find was the batch's largest single cost per event).
  class flat_index {
   public:
    using found = std::pair<std::string_view, cached*>;
    const found* find(std::string_view key) const;
    // REQUIRES: key absent, entry not null. The reference lasts until the next insert.
    const found& insert(std::string_view key, cached* entry);
    void clear();

   private:
    struct slot {
      size_t hash = 0;
      found kv{};  // kv.second nullptr: empty
    };
    slot& place(const slot& s);  // into the first empty slot from its hash on
    void grow();
    std::vector<slot> slots_;
    size_t size_ = 0;
  };
  // The keys touched in this batch (of the state, or of the private state).
  // Found by hash; in key order only once a range or a count asks for it
  // (ordered()), since most views never do: an ordered map of every key
  // written cost a tree insert of string compares per posting. Entries never
  // move (a deque), so the indexes view their keys.
  class cache {
   public:
    cache() = default;
    // Moved only: the indexes view the entries' keys and point at them.
    cache(cache&&) = default;
    cache& operator=(cache&&) = default;
    cache(const cache&) = delete;
    cache& operator=(const cache&) = delete;
    using ordered_index = std::map<std::string_view, cached*, std::less<>>;
    // The stored key (it outlives the caller's) and its entry.
    using found = flat_index::found;
    const found* find(std::string_view key) const;
    const found& insert(std::string_view key, cached entry);  // REQUIRES: key absent
    // Every entry in key order; built on first use, then kept by insert().
    const ordered_index& ordered();
    template <class F>
    void for_each(F&& fn) {  // in no particular order
      for (auto& [key, entry] : items_) fn(std::string_view(key), entry);
    }
    void clear();
    // Drops the key order (built again if asked): a warm cache carried into
    // the next batch does not make every later insert pay for it.
    void forget_order();

   private:
    std::deque<std::pair<std::string, cached>> items_;
    flat_index index_;
    ordered_index ordered_;
    bool has_ordered_ = false;
  };

 public:
  // What a committed batch leaves to the next batch of the same store: the
  // state keys it touched, with their committed values (see warm()).
  class warm_cache {
   public:
    warm_cache() : bytes_(0) {}
    // Estimated bytes held (as bytes() counts them).
    uint64_t bytes() const { return bytes_; }

   private:
    friend class batch_txn;
    cache entries_;
    uint64_t bytes_;
  };

  // `warm`: the cache of the previous batch of `store`, whose commit
  // succeeded, with nothing else written to the store since; or whose
  // commit is still running, when `before_read` waits for it: it runs once,
  // before the batch first reads the store (a key the warm cache does not
  // hold, a range, a count, private state).
  explicit batch_txn(const view_store& store, warm_cache warm = {},
                     std::function<void()> before_read = {});
  batch_txn(const batch_txn&) = delete;
  batch_txn& operator=(const batch_txn&) = delete;

  // Starts the input at `offset` (ascending across calls).
  void begin_input(uint64_t offset);
  // Keeps the current input's writes. Throws std::runtime_error if the
  // committed state cannot be read (the input is then still open: discard it).
  void commit_input();
  // Drops the current input's writes.
  void discard_input();

  // The kept changes, ascending by offset (offsets without a change have no
  // entry). Releases the read snapshot: call before committing, and commit
  // them with take_blind_changes() (view_store::commit), which drops the
  // blind ones that change nothing.
  std::vector<offset_changes> take_changes();
  // The changes of take_changes() written blind: recorded without comparing
  // them with the key's value before them (the first write of a state key
  // that the batch had not read: its committed value is not read, since most
  // index views never read the keys they write and a read is a random
  // descent of the state's tree per key; any write while the batch has not
  // read the state: not even the batch's own earlier write is looked up).
  // Ascending.
  std::vector<blind_change> take_blind_changes();
  // The kept private changes, in key order: each private key whose value at
  // the end of the batch differs from its committed value.
  std::vector<key_change> take_private_changes();
  // Number of inputs kept so far.
  uint64_t inputs() const { return inputs_; }
  // Estimated bytes held by the batch: keys and values cached or written,
  // kept changes (an upper bound: a key rewritten counts each time).
  uint64_t bytes() const { return bytes_; }
  // Of those, the state keys cached (and their values as read).
  uint64_t cache_bytes() const { return cache_bytes_; }
  // The state cache, for the next batch once this batch's commit succeeded:
  // every cached value is then the committed one, so the next batch reads
  // from the store only the keys this one did not touch. Empty when the
  // batch wrote the state without ever reading it (nothing indexed).
  warm_cache warm();

  // view_txn. get() and get_private() throw std::runtime_error if the
  // committed state cannot be read (the runner then treats the input as failed).
  std::optional<json> get(std::string_view key) override;
  void put(std::string_view key, json value) override;
  void erase(std::string_view key) override;
  std::optional<json> get_private(std::string_view key) override;
  void put_private(std::string_view key, json value) override;
  void erase_private(std::string_view key) override;
  // range(), count() and their private forms throw std::runtime_error if the
  // committed state cannot be read.
  // (The defaults are view_txn's.)
  page range(std::string_view prefix, std::string_view start = {},
             size_t limit = 1000) override;
  uint64_t count(std::string_view prefix) override;
  page range_private(std::string_view prefix, std::string_view start = {},
                     size_t limit = 1000) override;
  uint64_t count_private(std::string_view prefix) override;

 private:
  // One input's writes, in the order made. A document that writes hundreds of
  // keys would pay a scan of the input per write: past a few writes, a write
  // is appended without looking (a key may then appear more than once; its
  // last write counts), and a hash index of the keys (viewing the deque's,
  // which never move on push_back) is built only once a read asks for one.
  // sort() orders the writes by key and keeps each key's last.
  class writes {
   public:
    using value_type = std::pair<std::string, value>;
    value* find(std::string_view key);  // the last write of `key`
    void write(std::string_view key, value v);
    void sort();  // by key, each key once (its last write); drops the index
    void clear();
    size_t size() const { return items_.size(); }
    value_type& operator[](size_t i) { return items_[i]; }
    auto begin() { return items_.begin(); }
    auto end() { return items_.end(); }
    auto begin() const { return items_.begin(); }
    auto end() const { return items_.end(); }

   private:
    static constexpr size_t scan_limit = 8;
    void index_new();  // adds the writes made since the index was last used
    std::deque<value_type> items_;
    std::unordered_map<std::string_view, size_t> index_;
    size_t indexed_ = 0;  // items_[0, indexed_) are in index_
  };
  // The entry found last (a key of its cache): a get and a put of one key in
  // one input cost one lookup.
  struct last_entry {
    std::string_view key;
    cached* entry = nullptr;
  };
  // The snapshot, opened on first use.
  view_snapshot& snapshot();
  // The committed value of `key` (of the private state when `is_private`).
  value read_committed(std::string_view key, bool is_private);
  // The batch's entry of `key`, or nullptr.
  cached* find_entry(bool is_private, std::string_view key);
  // Adds the entry of `key` (absent).
  cached& insert_entry(bool is_private, std::string_view key, cached e);
  // The batch's entry of `key`, read from the snapshot on first use.
  cached& batch_entry(bool is_private, std::string_view key);
  // Indexes the state changes kept so far, once (the batch's first state read).
  void index_state();
  // Reads whether the state key of a blind entry exists in the committed state.
  void learn_existed(std::string_view key, cached& e);
  value& batch_value(std::string_view key) { return batch_entry(false, key).current; }
  page merged_range(bool is_private, std::string_view prefix, std::string_view start,
                    size_t limit);
  uint64_t merged_count(bool is_private, std::string_view prefix);

  const view_store& store_;
  std::function<void()> before_read_;
  std::optional<view_snapshot> snapshot_;
  cache batch_;    // every key touched in this batch
  last_entry batch_last_;
  writes input_;   // the current input's writes
  cache private_batch_;
  last_entry private_last_;
  writes private_input_;
  std::vector<value*> targets_;          // reused by commit_input
  std::vector<value*> private_targets_;  // reused by commit_input
  std::vector<offset_changes> changes_;
  std::vector<blind_change> blind_;
  bool state_indexed_ = false;  // state writes go through batch_ (see index_state)
  bool unindexed_ = false;      // changes_ holds state writes that batch_ does not
  uint64_t offset_ = 0;
  uint64_t inputs_ = 0;
  uint64_t bytes_ = 0;
  uint64_t cache_bytes_ = 0;
};

// Compact JSON text of `v`; a fast path for the common scalars.
std::string dump_compact(const json& v);

}  // namespace derive
