#pragma once
// Declaring a view: what an application developer writes.
//
//   auto counts = derive::view_def("counts", 1)
//     .from_log()
//     .apply([](const derive::event& e, derive::view_txn& tx) {
//       auto n = tx.get(e.type).value_or(0);
//       tx.put(e.type, n.get<int64_t>() + 1);
//     });
//
// View code must be a pure function of its input (the event or upstream change
// and the state read through `tx`): the runtime may re-run it after a crash or
// a rebuild and must get the same state.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <derive/event.hpp>
#include <derive/query.hpp>
#include <derive/status.hpp>
#include <derive/view_snapshot.hpp>

namespace derive {

// The state of one view as seen by view code while it applies one input.
// Reads see the writes made earlier in the same batch.
//
// Private state (get_private, put_private, erase_private) is a second key
// space that the view keeps for itself: bookkeeping its function needs but
// does not publish (for example what it indexed per document). It is
// committed atomically with the state and the offset, and read by the view's
// queries (view_snapshot::get_private), but readers, subscribers, changelogs
// and derived views never see it. It is part of the view's pure function of
// its input: rebuilt with the view (a new version starts with none), and the
// writes of a failed input are discarded with its state writes. Keys and
// values are as for the state; the key spaces are independent.
//
// Ranges ("keys are the unit of change", docs/writing-a-view.md): range()
// and count() read the keys that start with a prefix, as get() would see each
// of them: the committed state merged with every put and erase made earlier in
// the batch and in this input. Their cost is proportional to the keys under
// the prefix (count() never decodes a value), not to the size of the view, so
// an index kept as one key per entry (`word/doc`) is read and changed at the
// cost of the entries an input touches.
class view_txn {
 public:
  // One page of range(): keys in byte order; `next` (the first key not
  // returned) is set when more keys with the prefix remain.
  struct entry {
    std::string key;
    json value;
  };
  struct page {
    std::vector<entry> items;
    std::optional<std::string> next;
  };

  virtual ~view_txn() = default;
  virtual std::optional<json> get(std::string_view key) = 0;
  virtual void put(std::string_view key, json value) = 0;
  virtual void erase(std::string_view key) = 0;
  virtual std::optional<json> get_private(std::string_view key) = 0;
  virtual void put_private(std::string_view key, json value) = 0;
  virtual void erase_private(std::string_view key) = 0;

  // Keys starting with `prefix`, from `start` on (inclusive; empty: the
  // first), in byte order, at most `limit` (0 returns no item, only `next`).
  // Page on with start = next. Throws std::runtime_error if the committed
  // state cannot be read (as get() does).
  virtual page range(std::string_view prefix, std::string_view start = {},
                     size_t limit = 1000) = 0;
  // How many keys start with `prefix` (the same keys range() would list),
  // without reading their values.
  virtual uint64_t count(std::string_view prefix) = 0;
  // The same over the private state.
  virtual page range_private(std::string_view prefix, std::string_view start = {},
                             size_t limit = 1000) = 0;
  virtual uint64_t count_private(std::string_view prefix) = 0;
};

// How much changelog a view keeps behind its offset (docs/storage.md,
// "Changelog retention"). An entry is pruned as soon as ANY limit says so;
// 0 turns a limit off. A subscriber or derived view that resumes before the
// oldest kept entry gets a reset (a fresh snapshot), never a gap.
struct changelog_retention_options {
  // Keep at most the last `offsets` view offsets.
  uint64_t offsets = 100'000;
  // Keep at most max(max_bytes, state_fraction x the size of the view's
  // state) bytes of changelog entries, so that the changelog stays a bounded
  // fraction of the view (plus a floor that lets small views keep history).
  uint64_t max_bytes = uint64_t{8} << 20;
  double state_fraction = 0.25;
  // Keep entries at most this long after the commit that wrote them
  // (to within max_age / 32).
  std::chrono::milliseconds max_age = std::chrono::hours(24);
};

// One change of an upstream view, as a derived view receives it.
struct upstream_change {
  uint64_t offset = 0;        // the upstream view offset (a log offset)
  std::string key;
  std::optional<json> value;  // nullopt: the key was deleted
};

enum class failure_policy {
  stop,         // stop the view at the failing event (state committed up to N-1)
  dead_letter,  // record the failing event as a dead letter and go on
};

class view_def {
 public:
  view_def(std::string name, uint32_t version = 1)
      : name_(std::move(name)), version_(version) {}

  // Consume the log (the default).
  view_def& from_log() { source_.clear(); return *this; }
  // Consume the changelog of view `upstream` (declared in the same runtime).
  view_def& from_view(std::string upstream) { source_ = std::move(upstream); return *this; }

  view_def& apply(std::function<void(const event&, view_txn&)> fn) {
    on_event_ = std::move(fn);
    return *this;
  }
  view_def& apply_change(std::function<void(const upstream_change&, view_txn&)> fn) {
    on_change_ = std::move(fn);
    return *this;
  }
  view_def& query(std::string name, query_fn fn) {
    queries_[std::move(name)] = std::move(fn);
    return *this;
  }
  view_def& on_failure(failure_policy p) { policy_ = p; return *this; }
  // Keep at most `offsets` offsets of changelog (0: no count limit); the byte
  // and age limits stay as they are.
  view_def& changelog_retention(uint64_t offsets) {
    retention_.offsets = offsets;
    return *this;
  }
  view_def& changelog_retention(changelog_retention_options options) {
    retention_ = options;
    return *this;
  }

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  const std::string& source() const { return source_; }  // "" = the log
  bool from_log_source() const { return source_.empty(); }
  const std::function<void(const event&, view_txn&)>& event_fn() const { return on_event_; }
  const std::function<void(const upstream_change&, view_txn&)>& change_fn() const {
    return on_change_;
  }
  const std::map<std::string, query_fn>& queries() const { return queries_; }
  failure_policy policy() const { return policy_; }
  uint64_t retention() const { return retention_.offsets; }
  const changelog_retention_options& retention_options() const { return retention_; }

 private:
  std::string name_;
  uint32_t version_;
  std::string source_;
  std::function<void(const event&, view_txn&)> on_event_;
  std::function<void(const upstream_change&, view_txn&)> on_change_;
  std::map<std::string, query_fn> queries_;
  failure_policy policy_ = failure_policy::stop;
  changelog_retention_options retention_;
};

}  // namespace derive
