#pragma once
// The shared state of one declared view: its definition, its store, and what
// its runner publishes (offset, status) for readers on any thread.
//
// Ownership: the runtime owns the slots for as long as storage is open. The
// runner writes offset/status; everyone else only reads them.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <derive/view.hpp>
#include <derive/view_info.hpp>

#include "core/view_store.hpp"

namespace derive {

class view_slot {
 public:
  view_slot(view_def def, size_t index) : def_(std::move(def)), index_(index) {}

  const view_def& def() const { return def_; }
  const std::string& name() const { return def_.name(); }
  size_t index() const { return index_; }

  // Set once at start, before the runner exists.
  void attach(std::unique_ptr<view_store> store);
  void detach_store() { store_.reset(); }
  view_store* store() const { return store_.get(); }
  view_slot* upstream = nullptr;           // the source view, or nullptr: the log
  std::vector<view_slot*> downstream;      // views that consume this one

  // The committed offset, as published by the runner after each commit.
  uint64_t offset() const { return offset_.load(std::memory_order_acquire); }
  void publish_offset(uint64_t offset) { offset_.store(offset, std::memory_order_release); }

  // Counters for metrics.
  std::atomic<uint64_t> applied{0};  // inputs applied since start
  std::atomic<uint64_t> commits{0};
  std::atomic<uint64_t> bytes_written{0};  // keys + values committed (state and private)
  std::atomic<uint64_t> largest_value{0};  // the largest value committed, in bytes

  // Set by runtime::stop before the runners are told to stop: the runner ends
  // its current batch after the input it is applying (view_runner.hpp).
  std::atomic<bool> stopping{false};

  // Set while the view is rebuilt after an erasure (actors/eraser.hpp): its
  // reads answer `unavailable` and its changes go to no subscriber, so that
  // nobody sees a half-built view; cleared when the rebuild is complete.
  std::atomic<bool> erasing{false};

  // Status. `lag_threshold` is runtime_options::live_batch.
  void set_active(bool rebuilding);
  void set_caught_up();  // ends `rebuilding`
  void set_failed(uint64_t failed_offset, std::string error);
  void set_stopped();
  bool failed() const;
  view_info info(uint64_t head, uint64_t lag_threshold) const;

 private:
  enum class phase { active, failed, stopped };
  view_def def_;
  size_t index_;
  std::unique_ptr<view_store> store_;
  std::atomic<uint64_t> offset_{0};
  mutable std::mutex mu_;
  phase phase_ = phase::stopped;
  bool rebuilding_ = false;
  std::string error_;
  std::optional<uint64_t> failed_offset_;
};

}  // namespace derive
