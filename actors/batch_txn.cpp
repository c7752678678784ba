#include "actors/batch_txn.hpp"

#include <algorithm>
#include <stdexcept>

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

void batch_txn::begin_input(uint64_t offset) {
  input_.clear();
  private_input_.clear();
  offset_ = offset;
}

void batch_txn::commit_input() {
  // First find the net changes (reads may throw), then apply them, so that a
  // failed read leaves the batch as it was.
  if (input_.size() > 1)  // the changes of one offset are in key order
    std::sort(input_.begin(), input_.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
  offset_changes entry;
  entry.offset = offset_;
  auto& targets = targets_;
  targets.clear();
  for (auto& [key, v] : input_) {
    auto& old = batch_value(key);
    targets.push_back(&old);
    if (old == v) continue;
    key_change change;
    change.key = key;
    if (v) change.value = dump_compact(*v);
    entry.changes.push_back(std::move(change));
  }
  private_targets_.clear();
  for (auto& [key, v] : private_input_) private_targets_.push_back(&batch_private(key).current);
  for (size_t i = 0; i < input_.size(); ++i) *targets[i] = std::move(input_[i].second);
  for (size_t i = 0; i < private_input_.size(); ++i)
    *private_targets_[i] = std::move(private_input_[i].second);
  input_.clear();
  private_input_.clear();
  ++inputs_;
  if (!entry.changes.empty()) changes_.push_back(std::move(entry));
}

void batch_txn::discard_input() {
  input_.clear();
  private_input_.clear();
}

std::vector<offset_changes> batch_txn::take_changes() {
  snapshot_.reset();
  return std::move(changes_);
}

std::vector<key_change> batch_txn::take_private_changes() {
  std::vector<key_change> out;
  for (auto& [key, v] : private_batch_) {
    if (v.committed == v.current) continue;
    key_change change;
    change.key = key;
    if (v.current) change.value = dump_compact(*v.current);
    out.push_back(std::move(change));
  }
  std::sort(out.begin(), out.end(),
            [](const key_change& a, const key_change& b) { return a.key < b.key; });
  private_batch_.clear();
  return out;
}

batch_txn::value batch_txn::read_committed(std::string_view key, bool is_private) {
  if (!snapshot_) {
    auto snap = store_.snapshot();
    if (!snap) throw std::runtime_error("cannot read view state: " + snap.error().to_string());
    snapshot_.emplace(std::move(*snap));
  }
  auto stored = is_private ? snapshot_->get_private(key) : snapshot_->get(key);
  if (!stored) throw std::runtime_error("cannot read view state: " + stored.error().to_string());
  value v;
  if (*stored) v = json::parse(**stored);
  return v;
}

batch_txn::value& batch_txn::batch_value(std::string_view key) {
  lookup_.assign(key);
  if (auto it = batch_.find(lookup_); it != batch_.end()) return it->second;
  value v = read_committed(key, false);
  return batch_.emplace(lookup_, std::move(v)).first->second;
}

batch_txn::private_value& batch_txn::batch_private(std::string_view key) {
  lookup_.assign(key);
  if (auto it = private_batch_.find(lookup_); it != private_batch_.end()) return it->second;
  value v = read_committed(key, true);
  return private_batch_.emplace(lookup_, private_value{v, v}).first->second;
}

batch_txn::value* batch_txn::find(writes& input, std::string_view key) {
  for (auto& [k, v] : input)
    if (k == key) return &v;
  return nullptr;
}

void batch_txn::write(writes& input, std::string_view key, value v) {
  if (auto* slot = find(input, key)) *slot = std::move(v);
  else input.emplace_back(std::string(key), std::move(v));
}

std::optional<json> batch_txn::get(std::string_view key) {
  if (auto* v = find(input_, key)) return *v;
  return batch_value(key);
}

void batch_txn::put(std::string_view key, json v) { write(input_, key, std::move(v)); }

void batch_txn::erase(std::string_view key) { write(input_, key, std::nullopt); }

std::optional<json> batch_txn::get_private(std::string_view key) {
  if (auto* v = find(private_input_, key)) return *v;
  return batch_private(key).current;
}

void batch_txn::put_private(std::string_view key, json v) {
  write(private_input_, key, std::move(v));
}

void batch_txn::erase_private(std::string_view key) {
  write(private_input_, key, std::nullopt);
}

}  // namespace derive
