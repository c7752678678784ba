#pragma once
// The view_txn that view code sees while a runner applies one batch.
//
// Reads go through two layers: the writes of the current input (one event or
// one upstream offset), then the batch's view of every key touched so far —
// its committed value (read once from one read snapshot, opened at the first
// read) or the value written by an earlier input of the batch. Nothing touches
// LMDB's write lock: the runner hands the recorded changes to
// view_store::commit once the batch is done.
//
// An input is either kept (commit_input: its net writes, in key order, become
// the offset_changes entry of its offset) or discarded (discard_input: as if it
// never ran, for a failing event). A put of the value a key already has, and
// an erase of an absent key, record nothing.
//
// Thread-safety: one runner thread. Not copyable.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "actors/view.hpp"
#include "core/view_store.hpp"

namespace derive {

class batch_txn final : public view_txn {
 public:
  explicit batch_txn(const view_store& store) : store_(store) {}
  batch_txn(const batch_txn&) = delete;
  batch_txn& operator=(const batch_txn&) = delete;

  // Starts the input at `offset` (ascending across calls).
  void begin_input(uint64_t offset);
  // Keeps the current input's writes. Throws std::runtime_error if the
  // committed state cannot be read (the input is then still open: discard it).
  void commit_input();
  // Drops the current input's writes.
  void discard_input();

  // The kept changes, ascending by offset (offsets without a net change have
  // no entry). Releases the read snapshot: call before committing.
  std::vector<offset_changes> take_changes();
  // Number of inputs kept so far.
  uint64_t inputs() const { return inputs_; }

  // view_txn. get() throws std::runtime_error if the committed state cannot
  // be read (the runner then treats the input as failed).
  std::optional<json> get(std::string_view key) override;
  void put(std::string_view key, json value) override;
  void erase(std::string_view key) override;

 private:
  using value = std::optional<json>;
  // The batch's value of `key`, read from the snapshot on first use.
  value& batch_value(std::string_view key);
  value* input_value(std::string_view key);
  void write(std::string_view key, value v);

  const view_store& store_;
  std::optional<view_snapshot> snapshot_;
  std::unordered_map<std::string, value> batch_;  // every key touched in this batch
  std::vector<std::pair<std::string, value>> input_;  // the current input's writes
  std::string lookup_;           // reused key buffer for lookups
  std::vector<value*> targets_;  // reused by commit_input
  std::vector<offset_changes> changes_;
  uint64_t offset_ = 0;
  uint64_t inputs_ = 0;
};

// Compact JSON text of `v`; a fast path for the common scalars.
std::string dump_compact(const json& v);

}  // namespace derive
