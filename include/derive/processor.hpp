#pragma once
// Declaring a processor: a view that also writes events back to the log
// (design.md, "Processors"; docs/processors.md).
//
//   auto seats = derive::processor_def("seat_claims", 1)
//     .from_log()
//     .apply([](const derive::event& e, derive::processor_txn& tx) {
//       if (e.type != "seat.claim") return;
//       bool free = !tx.get(e.key);
//       if (free) tx.put(e.key, json::parse(e.data));
//       tx.emit({"seat.outcome", e.key, "", free ? R"({"ok":true})" : R"({"ok":false})"});
//     });
//   rt.add_processor(seats);
//
// A processor is run like a view (the same runner, batches, failure policies;
// its state is a view of the same name that readers can query). What it
// emits for input N is appended as ONE request with the idempotency key
// "proc/<name>/<version>/<N>", through the runtime's normal append path
// (validators included), and durably, BEFORE the processor commits its state
// and offset past N. After a crash it re-runs from its committed offset and
// emits the same events again (it is pure), which the log recognizes by the
// key and does not append twice: every input has exactly one set of outputs.
//
// Contracts:
// - Pure, as a view: the state and the emitted events depend only on the
//   input and the state read through `tx`. A change of code that changes what
//   is emitted needs a new version (a different key); re-emitting different
//   events under a known key fails the processor with idempotency_key_reused.
// - Emitted events come back as input of every consumer of the log, the
//   processor's own too: it must ignore (or handle) them.
// - The exactly-once window is the idempotency retention
//   (log_options::idempotency_retention): a processor stopped longer than that
//   between appending and committing could emit again.
// - A new version rebuilds its state from offset 1 and emits again under its
//   own keys; deploy a new version only when that is what is wanted.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <derive/event.hpp>
#include <derive/view.hpp>

namespace derive {

// The view_txn of a processor, plus emit().
class processor_txn : public view_txn {
 public:
  // Queues an event to be appended for the current input (all the events of
  // one input are appended atomically, in order). Checked like an append:
  // an invalid event fails the input (the processor's failure policy).
  virtual void emit(event_input e) = 0;
};

class processor_def {
 public:
  processor_def(std::string name, uint32_t version = 1)
      : name_(std::move(name)), version_(version) {}

  processor_def& from_log() { source_.clear(); return *this; }
  processor_def& from_view(std::string upstream) {
    source_ = std::move(upstream);
    return *this;
  }
  processor_def& apply(std::function<void(const event&, processor_txn&)> fn) {
    on_event_ = std::move(fn);
    return *this;
  }
  processor_def& apply_change(std::function<void(const upstream_change&, processor_txn&)> fn) {
    on_change_ = std::move(fn);
    return *this;
  }
  processor_def& query(std::string name, query_fn fn) {
    queries_.emplace_back(std::move(name), std::move(fn));
    return *this;
  }
  processor_def& on_failure(failure_policy p) { policy_ = p; return *this; }

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  const std::string& source() const { return source_; }
  const std::function<void(const event&, processor_txn&)>& event_fn() const { return on_event_; }
  const std::function<void(const upstream_change&, processor_txn&)>& change_fn() const {
    return on_change_;
  }
  const std::vector<std::pair<std::string, query_fn>>& queries() const { return queries_; }
  failure_policy policy() const { return policy_; }

  // The idempotency key of the outputs for input `offset`.
  std::string output_key(uint64_t offset) const {
    return "proc/" + name_ + "/" + std::to_string(version_) + "/" + std::to_string(offset);
  }

 private:
  std::string name_;
  uint32_t version_;
  std::string source_;
  std::function<void(const event&, processor_txn&)> on_event_;
  std::function<void(const upstream_change&, processor_txn&)> on_change_;
  std::vector<std::pair<std::string, query_fn>> queries_;
  failure_policy policy_ = failure_policy::stop;
};

}  // namespace derive
