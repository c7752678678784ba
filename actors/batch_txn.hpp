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
// Private state (view.hpp) goes through the same two layers, read from the
// same snapshot (get_private); a discarded input drops its private writes too.
// Its kept writes are not per offset: take_private_changes gives the batch's
// net change of each private key, for the same view_store::commit.
//
// Thread-safety: one runner thread. Not copyable.

#include <cstdint>
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
  // The kept private changes, in key order: each private key whose value at
  // the end of the batch differs from its committed value.
  std::vector<key_change> take_private_changes();
  // Number of inputs kept so far.
  uint64_t inputs() const { return inputs_; }

  // view_txn. get() and get_private() throw std::runtime_error if the
  // committed state cannot be read (the runner then treats the input as failed).
  std::optional<json> get(std::string_view key) override;
  void put(std::string_view key, json value) override;
  void erase(std::string_view key) override;
  std::optional<json> get_private(std::string_view key) override;
  void put_private(std::string_view key, json value) override;
  void erase_private(std::string_view key) override;

 private:
  using value = std::optional<json>;
  using writes = std::vector<std::pair<std::string, value>>;
  // A private key touched in this batch: its committed and its current value.
  struct private_value {
    value committed;
    value current;
  };
  // The committed value of `key` (of the private state when `is_private`),
  // from the snapshot opened on first use.
  value read_committed(std::string_view key, bool is_private);
  // The batch's value of `key`, read from the snapshot on first use.
  value& batch_value(std::string_view key);
  private_value& batch_private(std::string_view key);
  static value* find(writes& input, std::string_view key);
  static void write(writes& input, std::string_view key, value v);

  const view_store& store_;
  std::optional<view_snapshot> snapshot_;
  std::unordered_map<std::string, value> batch_;  // every key touched in this batch
  writes input_;                                  // the current input's writes
  std::unordered_map<std::string, private_value> private_batch_;
  writes private_input_;
  std::string lookup_;                   // reused key buffer for lookups
  std::vector<value*> targets_;          // reused by commit_input
  std::vector<value*> private_targets_;  // reused by commit_input
  std::vector<offset_changes> changes_;
  uint64_t offset_ = 0;
  uint64_t inputs_ = 0;
};

// Compact JSON text of `v`; a fast path for the common scalars.
std::string dump_compact(const json& v);

}  // namespace derive
