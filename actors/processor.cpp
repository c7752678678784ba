#include "actors/processor.hpp"

#include <future>
#include <stdexcept>

namespace derive {
namespace {

// view_txn with emit(): state calls go to the runner's transaction, emitted
// events to `out`.
class emitting_txn final : public processor_txn {
 public:
  emitting_txn(view_txn& inner, std::vector<event_input>& out) : inner_(inner), out_(out) {}

  std::optional<json> get(std::string_view key) override { return inner_.get(key); }
  void put(std::string_view key, json value) override { inner_.put(key, std::move(value)); }
  void erase(std::string_view key) override { inner_.erase(key); }
  std::optional<json> get_private(std::string_view key) override {
    return inner_.get_private(key);
  }
  void put_private(std::string_view key, json value) override {
    inner_.put_private(key, std::move(value));
  }
  void erase_private(std::string_view key) override { inner_.erase_private(key); }
  page range(std::string_view prefix, std::string_view start, size_t limit) override {
    return inner_.range(prefix, start, limit);
  }
  uint64_t count(std::string_view prefix) override { return inner_.count(prefix); }
  page range_private(std::string_view prefix, std::string_view start, size_t limit) override {
    return inner_.range_private(prefix, start, limit);
  }
  uint64_t count_private(std::string_view prefix) override {
    return inner_.count_private(prefix);
  }
  void emit(event_input e) override { out_.push_back(std::move(e)); }

 private:
  view_txn& inner_;
  std::vector<event_input>& out_;
};

// Drops the queued outputs of `offset` and later.
template <class V>
void drop_from(V& queued, uint64_t offset) {
  while (!queued.empty() && queued.back().offset >= offset) queued.pop_back();
}

}  // namespace

void processor_outbox::run(uint64_t offset, view_txn& tx,
                           const std::function<void(processor_txn&)>& fn) {
  // A new input (a derived processor calls once per upstream change of one
  // input): anything queued for it or later is from an abandoned attempt.
  if (offset != current_) drop_from(queued_, offset);
  current_ = offset;
  std::vector<event_input> out;
  emitting_txn ptx(tx, out);
  try {
    fn(ptx);
  } catch (...) {
    drop_from(queued_, offset);  // the runner discards this input's writes
    current_ = 0;
    throw;
  }
  if (out.empty()) return;
  if (queued_.empty() || queued_.back().offset != offset) queued_.push_back({offset, {}});
  auto& events = queued_.back().events;
  events.insert(events.end(), std::make_move_iterator(out.begin()),
                std::make_move_iterator(out.end()));
  // Check now, so that an invalid output fails this input (the policy).
  if (auto checked = check_append({events, def_.output_key(offset)}); !checked) {
    drop_from(queued_, offset);
    current_ = 0;
    throw std::runtime_error("processor " + def_.name() + " emitted an invalid event: " +
                             checked.error().to_string());
  }
}

view_def processor_outbox::as_view() {
  view_def view(def_.name(), def_.version());
  std::weak_ptr<processor_outbox> weak = weak_from_this();
  if (def_.source().empty()) {
    view.from_log().apply([weak](const event& e, view_txn& tx) {
      auto box = weak.lock();
      box->run(e.offset, tx, [&](processor_txn& ptx) { box->def_.event_fn()(e, ptx); });
    });
  } else {
    view.from_view(def_.source()).apply_change([weak](const upstream_change& c, view_txn& tx) {
      auto box = weak.lock();
      box->run(c.offset, tx, [&](processor_txn& ptx) { box->def_.change_fn()(c, ptx); });
    });
  }
  for (const auto& [name, fn] : def_.queries()) view.query(name, fn);
  view.on_failure(def_.policy());
  return view;
}

status processor_outbox::flush(uint64_t new_offset, const append_submit& submit) {
  std::vector<output> ready;
  for (auto& o : queued_)
    if (o.offset <= new_offset) ready.push_back(std::move(o));
  queued_.clear();
  current_ = 0;
  std::vector<std::future<result<append_outcome>>> outcomes;
  outcomes.reserve(ready.size());
  for (auto& o : ready) {
    auto checked = check_append({std::move(o.events), def_.output_key(o.offset)});
    if (!checked) return checked.error();  // checked when queued: not expected
    auto done = std::make_shared<std::promise<result<append_outcome>>>();
    outcomes.push_back(done->get_future());
    submit(std::move(*checked), [done](result<append_outcome> r) { done->set_value(std::move(r)); });
  }
  status first = status::ok();
  for (auto& f : outcomes) {
    auto r = f.get();
    if (!r && first) first = r.error();
  }
  return first;
}

}  // namespace derive
