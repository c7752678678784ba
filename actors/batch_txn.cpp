#include "actors/batch_txn.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "core/json_text.hpp"

namespace derive {

std::string dump_compact(const json& v) {
  switch (v.type()) {
    case json::value_t::number_integer: return std::to_string(v.get<int64_t>());
    case json::value_t::number_unsigned: return std::to_string(v.get<uint64_t>());
    case json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case json::value_t::null: return "null";
    default: return v.dump(-1, ' ', false, json::error_handler_t::replace);
  }
}

batch_txn::batch_txn(const view_store& store, warm_cache warm, std::function<void()> before_read)
    : store_(store),
      before_read_(std::move(before_read)),
      batch_(std::move(warm.entries_)),
      bytes_(warm.bytes_),
      cache_bytes_(warm.bytes_) {}

batch_txn::warm_cache batch_txn::warm() {
  if (unindexed_) {  // the cache misses the batch's writes: nothing to carry
    batch_.clear();
    batch_last_ = {};
    return {};
  }
  batch_.for_each([](std::string_view, cached& e) {
    e.existed = e.current.has_value();
    e.known = true;
  });
  warm_cache out;
  batch_.forget_order();
  out.entries_ = std::move(batch_);
  out.bytes_ = cache_bytes_;
  batch_.clear();
  batch_last_ = {};
  return out;
}

void batch_txn::begin_input(uint64_t offset) {
  // A read snapshot lives for one input at most: held across a whole batch
  // it would keep the environment from reusing the pages that the other
  // views' commits free meanwhile, and the file would grow by a copy of every
  // page they rewrite. A fresh one sees the same committed state (the runner
  // is its store's only writer).
  snapshot_.reset();
  input_.clear();
  private_input_.clear();
  offset_ = offset;
}

// Per cached key: its entry in the deque (~90 bytes), its share of the
// index (32-byte slots, two to four per key) and the json's own
// bookkeeping, roughly.
constexpr uint64_t entry_overhead = 176;

namespace {

bool same_text(const json& a, const json& b);

// Strings are written as their bytes when valid UTF-8, with U+FFFD for the
// bytes that are not otherwise.
bool same_string_text(const std::string& a, const std::string& b) {
  if (a == b) return true;
  if (is_valid_utf8(a) && is_valid_utf8(b)) return false;
  return json(a).dump(-1, ' ', false, json::error_handler_t::replace) ==
         json(b).dump(-1, ' ', false, json::error_handler_t::replace);
}

bool is_written_null(const json& v) {
  return v.is_null() || (v.is_number_float() && !std::isfinite(v.get<double>()));
}

// Whether two numbers are written the same: integers by value (signed or
// not), floats by their bits (shortest round-trip digits: distinct doubles
// are written differently, 0.0 and -0.0 too), never an integer as a float.
bool same_number_text(const json& a, const json& b) {
  if (a.is_number_float() || b.is_number_float()) {
    if (!a.is_number_float() || !b.is_number_float()) return false;
    const double x = a.get<double>(), y = b.get<double>();
    return std::memcmp(&x, &y, sizeof x) == 0;
  }
  const bool a_negative = a.is_number_integer() && !a.is_number_unsigned() && a.get<int64_t>() < 0;
  const bool b_negative = b.is_number_integer() && !b.is_number_unsigned() && b.get<int64_t>() < 0;
  if (a_negative != b_negative) return false;
  return a_negative ? a.get<int64_t>() == b.get<int64_t>() : a.get<uint64_t>() == b.get<uint64_t>();
}

// Whether dump_compact(a) == dump_compact(b), without writing either: what
// the store compares (stored bytes), so a batch's decisions do not depend on
// whether it looked a key up (1 and 1.0 are equal as JSON, not as text; NaN
// and null, two invalid UTF-8 strings, are not equal as JSON but are as text).
bool same_text(const json& a, const json& b) {
  if (is_written_null(a) || is_written_null(b)) return is_written_null(a) && is_written_null(b);
  if (a.is_number() || b.is_number()) return a.is_number() && b.is_number() && same_number_text(a, b);
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case json::value_t::boolean: return a.get<bool>() == b.get<bool>();
    case json::value_t::string:
      return same_string_text(a.get_ref<const std::string&>(), b.get_ref<const std::string&>());
    case json::value_t::array: {
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i)
        if (!same_text(a[i], b[i])) return false;
      return true;
    }
    case json::value_t::object: {
      if (a.size() != b.size()) return false;
      for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j)
        if (!same_string_text(i.key(), j.key()) || !same_text(i.value(), j.value())) return false;
      return true;
    }
    default: return a.dump() == b.dump();  // binary: not written by views
  }
}

bool same_text(const std::optional<json>& a, const std::optional<json>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || same_text(*a, *b);
}

}  // namespace

void batch_txn::commit_input() {
  // First find the net changes (private reads may throw), then apply them,
  // so that a failed read leaves the batch as it was.
  uint64_t added = 0;
  private_input_.sort();
  private_targets_.clear();
  for (auto& [key, v] : private_input_) {
    private_targets_.push_back(&batch_entry(true, key).current);
    added += key.size() + (v ? dump_compact(*v).size() : 0) + entry_overhead;
  }
  // State keys read nothing: a key the batch has not seen yet (any key, while
  // the batch has not read the state) is written blind (its change is kept;
  // the commit drops it if it changes nothing).
  input_.sort();  // the changes of one offset are in key order
  offset_changes entry;
  entry.offset = offset_;
  entry.changes.reserve(input_.size());
  auto& targets = targets_;
  targets.clear();
  for (auto& [key, v] : input_) {
    cached* seen = state_indexed_ ? find_entry(false, key) : nullptr;
    const bool blind = seen == nullptr;
    if (blind && state_indexed_) {
      cached unread;
      unread.known = false;
      seen = &insert_entry(false, key, std::move(unread));
    }
    if (seen) targets.push_back(&seen->current);
    if (!blind && same_text(seen->current, v)) continue;
    if (blind)
      blind_.push_back({static_cast<uint32_t>(changes_.size()),
                        static_cast<uint32_t>(entry.changes.size())});
    key_change change;
    change.key = std::move(key);  // the cache holds a copy; the input is done with it
    if (v) change.value = dump_compact(*v);
    // Held until the commit as changelog text, and as the cached json once indexed.
    const uint64_t size = change.key.size() + (change.value ? change.value->size() : 0);
    added += (state_indexed_ ? 2 * size : size) + entry_overhead;
    entry.changes.push_back(std::move(change));
  }
  if (state_indexed_)
    for (size_t i = 0; i < input_.size(); ++i) *targets[i] = std::move(input_[i].second);
  else
    unindexed_ = unindexed_ || !entry.changes.empty();
  for (size_t i = 0; i < private_input_.size(); ++i)
    *private_targets_[i] = std::move(private_input_[i].second);
  input_.clear();
  private_input_.clear();
  ++inputs_;
  bytes_ += added;
  if (!entry.changes.empty()) changes_.push_back(std::move(entry));
}

void batch_txn::index_state() {
  if (state_indexed_) return;
  // Marked indexed only once all is indexed: a throw (bad_alloc) midway
  // leaves the batch unindexed, and the next read indexes it again.
  // The changes kept so far, in batch order: each key's cached value is its last.
  for (const auto& entry : changes_) {
    for (const auto& change : entry.changes) {
      value v;
      if (change.value) v = json::parse(*change.value);
      const uint64_t size = change.value ? change.value->size() : 0;
      bytes_ += size;
      cache_bytes_ += size;
      if (cached* seen = find_entry(false, change.key)) {
        seen->current = std::move(v);
        continue;
      }
      cached unread;
      unread.known = false;
      unread.current = std::move(v);
      insert_entry(false, change.key, std::move(unread));
    }
  }
  state_indexed_ = true;
  unindexed_ = false;
}

void batch_txn::discard_input() {
  input_.clear();
  private_input_.clear();
}

std::vector<offset_changes> batch_txn::take_changes() {
  snapshot_.reset();
  return std::move(changes_);
}

std::vector<blind_change> batch_txn::take_blind_changes() { return std::move(blind_); }

std::vector<key_change> batch_txn::take_private_changes() {
  std::vector<std::pair<std::string_view, const cached*>> changed;
  private_batch_.for_each([&](std::string_view key, const cached& v) {
    if (!same_text(v.committed, v.current)) changed.emplace_back(key, &v);
  });
  std::sort(changed.begin(), changed.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<key_change> out;  // in key order
  out.reserve(changed.size());
  for (const auto& [key, v] : changed) {
    key_change change;
    change.key = std::string(key);
    if (v->current) change.value = dump_compact(*v->current);
    out.push_back(std::move(change));
  }
  private_last_ = {};
  private_batch_.clear();
  return out;
}

view_snapshot& batch_txn::snapshot() {
  if (!snapshot_) {
    if (before_read_) std::exchange(before_read_, nullptr)();
    auto snap = store_.snapshot();
    if (!snap) throw std::runtime_error("cannot read view state: " + snap.error().to_string());
    snapshot_.emplace(std::move(*snap));
  }
  return *snapshot_;
}

batch_txn::value batch_txn::read_committed(std::string_view key, bool is_private) {
  auto& snap = snapshot();
  auto stored = is_private ? snap.get_private(key) : snap.get(key);
  if (!stored) throw std::runtime_error("cannot read view state: " + stored.error().to_string());
  value v;
  if (*stored) {
    v = json::parse(**stored);
    bytes_ += (*stored)->size();
    if (!is_private) cache_bytes_ += (*stored)->size();
  }
  return v;
}

batch_txn::cached* batch_txn::find_entry(bool is_private, std::string_view key) {
  auto& last = is_private ? private_last_ : batch_last_;
  if (last.entry && last.key == key) return last.entry;
  auto& c = is_private ? private_batch_ : batch_;
  const auto* found = c.find(key);
  if (!found) return nullptr;
  last = {found->first, found->second};
  return found->second;
}

batch_txn::cached& batch_txn::insert_entry(bool is_private, std::string_view key, cached e) {
  bytes_ += key.size() + entry_overhead;
  if (!is_private) cache_bytes_ += key.size() + entry_overhead;
  auto& c = is_private ? private_batch_ : batch_;
  const auto& stored = c.insert(key, std::move(e));
  (is_private ? private_last_ : batch_last_) = {stored.first, stored.second};
  return *stored.second;
}

batch_txn::cached& batch_txn::batch_entry(bool is_private, std::string_view key) {
  if (cached* found = find_entry(is_private, key)) return *found;
  cached e;
  e.current = read_committed(key, is_private);
  e.existed = e.current.has_value();
  if (is_private) e.committed = e.current;
  return insert_entry(is_private, key, std::move(e));
}

void batch_txn::learn_existed(std::string_view key, cached& e) {
  if (e.known) return;
  e.existed = read_committed(key, false).has_value();
  e.known = true;
}

const batch_txn::flat_index::found* batch_txn::flat_index::find(std::string_view key) const {
  if (slots_.empty()) return nullptr;
  const size_t hash = std::hash<std::string_view>{}(key);
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const slot& s = slots_[i];
    if (s.kv.second == nullptr) return nullptr;
    if (s.hash == hash && s.kv.first == key) return &s.kv;
  }
}

const batch_txn::flat_index::found& batch_txn::flat_index::insert(std::string_view key,
                                                                  cached* entry) {
  if (2 * (size_ + 1) > slots_.size()) grow();
  ++size_;
  return place({std::hash<std::string_view>{}(key), {key, entry}}).kv;
}

batch_txn::flat_index::slot& batch_txn::flat_index::place(const slot& s) {
  const size_t mask = slots_.size() - 1;
  size_t i = s.hash & mask;
  while (slots_[i].kv.second != nullptr) i = (i + 1) & mask;
  return slots_[i] = s;
}

void batch_txn::flat_index::grow() {
  const size_t capacity = std::max<size_t>(64, 2 * slots_.size());
  std::vector<slot> old = std::exchange(slots_, std::vector<slot>(capacity));
  for (const slot& s : old)
    if (s.kv.second != nullptr) place(s);
}

void batch_txn::flat_index::clear() {
  slots_ = {};
  size_ = 0;
}

const batch_txn::cache::found* batch_txn::cache::find(std::string_view key) const {
  return index_.find(key);
}

const batch_txn::cache::found& batch_txn::cache::insert(std::string_view key, cached entry) {
  auto& [stored, e] = items_.emplace_back(std::string(key), std::move(entry));
  const auto& at = index_.insert(stored, &e);
  if (has_ordered_) ordered_.emplace(stored, &e);
  return at;
}

const batch_txn::cache::ordered_index& batch_txn::cache::ordered() {
  if (!has_ordered_) {
    for (auto& [key, e] : items_) ordered_.emplace(key, &e);
    has_ordered_ = true;
  }
  return ordered_;
}

void batch_txn::cache::forget_order() {
  ordered_.clear();
  has_ordered_ = false;
}

void batch_txn::cache::clear() {
  forget_order();
  index_.clear();
  items_.clear();
}

namespace {

bool has_prefix(std::string_view key, std::string_view prefix) {
  return key.substr(0, prefix.size()) == prefix;
}

// The keys of one input's writes under `prefix`, from `lo` on, in key order.
// A key written more than once appears once, with its last write.
template <class Writes>
std::vector<const typename Writes::value_type*> input_keys(const Writes& input,
                                                           std::string_view prefix,
                                                           std::string_view lo) {
  std::vector<const typename Writes::value_type*> out;
  for (const auto& w : input)
    if (has_prefix(w.first, prefix) && std::string_view(w.first) >= lo) out.push_back(&w);
  std::stable_sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->first < b->first; });
  size_t kept = 0;
  for (size_t i = 0; i < out.size(); ++i)
    if (i + 1 == out.size() || out[i + 1]->first != out[i]->first) out[kept++] = out[i];
  out.resize(kept);
  return out;
}

}  // namespace

view_txn::page batch_txn::merged_range(bool is_private, std::string_view prefix,
                                       std::string_view start, size_t limit) {
  if (!is_private) index_state();
  const std::string_view lo = std::max(prefix, start);
  auto& snap = snapshot();
  const auto& batch = (is_private ? private_batch_ : batch_).ordered();
  const auto in = input_keys(is_private ? private_input_ : input_, prefix, lo);
  size_t ii = 0;
  auto bi = batch.lower_bound(lo);
  // The committed keys, a page at a time.
  const size_t chunk = std::clamp<size_t>(limit + 1, 16, 1024);
  view_snapshot::page committed;
  size_t ci = 0;
  auto fetch = [&](std::string_view from) {
    auto p = is_private ? snap.range_private(prefix, from, chunk) : snap.range(prefix, from, chunk);
    if (!p) throw std::runtime_error("cannot read view state: " + p.error().to_string());
    committed = std::move(*p);
    ci = 0;
  };
  fetch(lo);

  page out;
  std::string key;
  while (true) {
    if (ci == committed.items.size() && committed.next) {
      std::string from = *committed.next;
      fetch(from);
    }
    const bool has_in = ii < in.size();
    const bool has_batch = bi != batch.end() && has_prefix(bi->first, prefix);
    const bool has_committed = ci < committed.items.size();
    if (!has_in && !has_batch && !has_committed) break;
    // The smallest key of the three sources; the input's write wins over the
    // batch's, the batch's over the committed value.
    std::optional<std::string_view> k;
    auto consider = [&](std::string_view c) {
      if (!k || c < *k) k = c;
    };
    if (has_in) consider(in[ii]->first);
    if (has_batch) consider(bi->first);
    if (has_committed) consider(committed.items[ci].key);
    key.assign(*k);
    std::optional<json> v;
    bool decided = false;
    if (has_in && in[ii]->first == key) {
      v = in[ii]->second;
      decided = true;
      ++ii;
    }
    if (has_batch && bi->first == key) {
      if (!decided) v = bi->second->current;
      decided = true;
      ++bi;
    }
    if (has_committed && committed.items[ci].key == key) {
      if (!decided) v = json::parse(committed.items[ci].value);
      ++ci;
    }
    if (!v) continue;
    if (out.items.size() == limit) {
      out.next = key;
      break;
    }
    out.items.push_back({key, std::move(*v)});
  }
  return out;
}

uint64_t batch_txn::merged_count(bool is_private, std::string_view prefix) {
  if (!is_private) index_state();
  auto& snap = snapshot();
  auto stored = is_private ? snap.count_private(prefix) : snap.count(prefix);
  if (!stored) throw std::runtime_error("cannot read view state: " + stored.error().to_string());
  int64_t n = static_cast<int64_t>(*stored);
  writes& input = is_private ? private_input_ : input_;
  // Keys of the input not yet in the batch: learn whether they existed.
  const auto in = input_keys(input, prefix, prefix);
  for (const auto* w : in) batch_entry(is_private, w->first);
  const auto& batch = (is_private ? private_batch_ : batch_).ordered();
  // Then one walk over the batch's keys under the prefix (the input's, in
  // key order too, are met along the way).
  size_t ii = 0;
  for (auto it = batch.lower_bound(prefix); it != batch.end() && has_prefix(it->first, prefix);
       ++it) {
    if (!is_private) learn_existed(it->first, *it->second);
    bool present = it->second->current.has_value();
    while (ii < in.size() && in[ii]->first < it->first) ++ii;
    if (ii < in.size() && in[ii]->first == it->first) present = in[ii]->second.has_value();
    n += int64_t{present} - int64_t{it->second->existed};
  }
  return static_cast<uint64_t>(n);
}

view_txn::page batch_txn::range(std::string_view prefix, std::string_view start, size_t limit) {
  return merged_range(false, prefix, start, limit);
}

uint64_t batch_txn::count(std::string_view prefix) { return merged_count(false, prefix); }

view_txn::page batch_txn::range_private(std::string_view prefix, std::string_view start,
                                        size_t limit) {
  return merged_range(true, prefix, start, limit);
}

uint64_t batch_txn::count_private(std::string_view prefix) {
  return merged_count(true, prefix);
}

batch_txn::value* batch_txn::writes::find(std::string_view key) {
  if (items_.size() <= scan_limit) {
    for (auto it = items_.rbegin(); it != items_.rend(); ++it)
      if (it->first == key) return &it->second;
    return nullptr;
  }
  index_new();
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

void batch_txn::writes::write(std::string_view key, value v) {
  // A few writes, or an input that reads: replace in place. Otherwise append
  // (sort() keeps the last).
  if (items_.size() < scan_limit || indexed_ > 0) {
    if (auto* slot = find(key)) {
      *slot = std::move(v);
      return;
    }
  }
  items_.emplace_back(std::string(key), std::move(v));
}

void batch_txn::writes::index_new() {
  if (indexed_ == 0) index_.reserve(items_.size() * 2);
  for (; indexed_ < items_.size(); ++indexed_)
    index_.insert_or_assign(std::string_view(items_[indexed_].first), indexed_);
}

void batch_txn::writes::sort() {
  index_.clear();
  indexed_ = 0;
  if (items_.size() < 2) return;
  std::stable_sort(items_.begin(), items_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t out = 0;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (i + 1 < items_.size() && items_[i + 1].first == items_[i].first) continue;
    if (out != i) items_[out] = std::move(items_[i]);
    ++out;
  }
  items_.resize(out);
}

void batch_txn::writes::clear() {
  if (items_.empty()) return;  // the index is empty too: twice per input, mostly empty
  index_.clear();
  indexed_ = 0;
  items_.clear();
}

std::optional<json> batch_txn::get(std::string_view key) {
  if (auto* v = input_.find(key)) return *v;
  index_state();
  return batch_value(key);
}

void batch_txn::put(std::string_view key, json v) { input_.write(key, std::move(v)); }

void batch_txn::erase(std::string_view key) { input_.write(key, std::nullopt); }

std::optional<json> batch_txn::get_private(std::string_view key) {
  if (auto* v = private_input_.find(key)) return *v;
  return batch_entry(true, key).current;
}

void batch_txn::put_private(std::string_view key, json v) {
  private_input_.write(key, std::move(v));
}

void batch_txn::erase_private(std::string_view key) {
  private_input_.write(key, std::nullopt);
}

}  // namespace derive
