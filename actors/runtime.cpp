#include <derive/runtime.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <future>
#include <limits>
#include <set>

#include <derive/actor_handles.hpp>
#include <derive/logging.hpp>
#include "actors/messages.hpp"
#include "actors/runtime_impl.hpp"
#include "core/append_check.hpp"
#include "actors/view_runner.hpp"
#include "core/json_text.hpp"

namespace derive {

namespace {

constexpr std::string_view component = "runtime";

status unavailable() { return {errc::unavailable, "the runtime is not running"}; }

status unknown_view(const std::string& name) {
  return {errc::unknown_view, "there is no view named '" + name + "'"};
}

// Sends `stop_atom` with a callback to `actor` and waits until the actor ran
// it, or dropped the message (an actor that is already gone).
void stop_and_wait(const caf::actor& actor) {
  if (!actor) return;
  auto stopped = std::make_shared<std::promise<void>>();
  auto future = stopped->get_future();
  {
    std::shared_ptr<void> guard(nullptr, [stopped](void*) { stopped->set_value(); });
    caf::anon_send(actor, stop_atom::value, done_callback{[guard] {}});
  }
  future.wait();
}

// The wire form of one change: {"offset":O,"key":"…","value":…}.
std::string wire_of(uint64_t offset, const std::string& key,
                    const std::optional<std::string>& value) {
  std::string out;
  append_change_item(out, offset, key, value);
  return out;
}

}  // namespace

std::string_view to_string(view_status s) {
  switch (s) {
    case view_status::running: return "running";
    case view_status::catching_up: return "catching_up";
    case view_status::rebuilding: return "rebuilding";
    case view_status::failed: return "failed";
    case view_status::stopped: return "stopped";
  }
  return "stopped";
}

bool subscription_filter::matches(std::string_view k) const {
  if (key) return k == *key;
  return k.substr(0, prefix.size()) == prefix;
}

// --- impl: setup -----------------------------------------------------------

runtime::impl::impl(runtime_options options) : options_(std::move(options)) {
  if (options_.worker_threads > 0)
    config_.set("scheduler.max-threads", static_cast<size_t>(options_.worker_threads));
  // Idle workers otherwise sleep 50 us between polls, adding latency to every
  // message sent from outside CAF (caf-0.17.md, section 5).
  config_.set("work-stealing.moderate-poll-attempts", static_cast<size_t>(0));
  config_.add_error_category(caf::atom("derive"),
                             [](uint8_t code, caf::atom_value, const caf::message& ctx) {
                               std::string out(to_string(static_cast<errc>(code)));
                               if (ctx.match_elements<std::string>())
                                 out += ": " + ctx.get_as<std::string>(0);
                               return out;
                             });
  system_ = std::make_unique<caf::actor_system>(config_);
}

runtime::impl::~impl() {
  stop();
  system_.reset();
}

void runtime::impl::add_view(view_def def) {
  std::unique_lock<std::shared_mutex> lock(storage_mu_);
  if (running_) {
    log_warn(component, "add_view(", def.name(), ") after start is ignored");
    return;
  }
  slots_.push_back(std::make_unique<view_slot>(std::move(def), slots_.size()));
}

void runtime::impl::add_validator(std::string type,
                                  std::function<status(const event_input&)> check) {
  std::unique_lock<std::shared_mutex> lock(storage_mu_);
  validators_[std::move(type)] = std::move(check);
}

status runtime::impl::check_views() const {
  std::unordered_map<std::string, const view_slot*> names;
  for (auto& slot : slots_) {
    const auto& def = slot->def();
    if (def.name().empty()) return {errc::invalid_parameter, "a view has an empty name"};
    if (!names.emplace(def.name(), slot.get()).second)
      return {errc::invalid_parameter, "two views are named '" + def.name() + "'"};
    if (def.from_log_source() && !def.event_fn())
      return {errc::invalid_parameter, "view '" + def.name() + "' reads the log but has no apply()"};
    if (!def.from_log_source() && !def.change_fn())
      return {errc::invalid_parameter,
              "view '" + def.name() + "' reads a view but has no apply_change()"};
  }
  for (auto& slot : slots_) {
    // Follow the sources: an unknown name or coming back to `slot` is an error.
    std::set<std::string> seen{slot->name()};
    const auto* at = slot.get();
    while (!at->def().from_log_source()) {
      auto up = names.find(at->def().source());
      if (up == names.end())
        return {errc::invalid_parameter, "view '" + at->name() + "' reads unknown view '" +
                                             at->def().source() + "'"};
      if (!seen.insert(up->first).second)
        return {errc::invalid_parameter,
                "views read each other in a cycle through '" + up->first + "'"};
      at = up->second;
    }
  }
  return status::ok();
}

// Consumers before their sources, so that a runner's downstream handles exist
// before it can publish.
std::vector<view_slot*> runtime::impl::spawn_order() const {
  std::vector<std::pair<size_t, view_slot*>> by_depth;
  for (auto& slot : slots_) {
    size_t depth = 0;
    for (auto* at = slot.get(); at->upstream; at = at->upstream) ++depth;
    by_depth.emplace_back(depth, slot.get());
  }
  std::stable_sort(by_depth.begin(), by_depth.end(),
                   [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<view_slot*> out;
  for (auto& [depth, slot] : by_depth) out.push_back(slot);
  return out;
}

status runtime::impl::start() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  std::unique_lock<std::shared_mutex> lock(storage_mu_);
  if (running_) return {errc::invalid_parameter, "the runtime is already running"};
  if (auto s = check_views(); !s) return s;
  if (auto s = open_storage(); !s) {
    close_storage();
    return s;
  }
  spawn_actors();
  {
    std::unique_lock<std::shared_mutex> appends(append_mu_);
    accepting_ = true;
  }
  running_ = true;
  log_info(component, "started in ", options_.data_dir, " with ", slots_.size(),
           " views, head ", log_->head());
  return status::ok();
}

status runtime::impl::open_storage() {
  auto env = environment::open(options_.data_dir, options_.storage);
  if (!env) return env.error();
  env_ = std::move(*env);
  auto log = event_log::open(*env_, options_.log);
  if (!log) return log.error();
  log_ = std::move(*log);
  by_name_.clear();
  for (auto& slot : slots_) {
    by_name_[slot->name()] = slot.get();
    slot->upstream = nullptr;
    slot->downstream.clear();
  }
  for (auto& slot : slots_) {
    if (slot->def().from_log_source()) continue;
    slot->upstream = by_name_.at(slot->def().source());
    slot->upstream->downstream.push_back(slot.get());
  }
  uint64_t head = log_->head();
  for (auto& slot : slots_) {
    view_store_options opts;
    // A view that others consume keeps its whole changelog: a consumer must
    // never find the offsets after its position pruned.
    opts.changelog_retention = slot->downstream.empty() ? slot->def().retention() : 0;
    auto store = view_store::open(*env_, slot->name(), slot->def().version(), opts);
    if (!store) return store.error();
    slot->attach(std::move(*store));
    slot->applied = 0;
    slot->commits = 0;
    if (auto failure = slot->store()->failure()) {
      slot->set_failed(failure->offset, failure->error);
      log_warn(component, "view ", slot->name(), " is failed: ", failure->error);
    } else {
      slot->set_active(slot->offset() == 0 && slot->def().version() > 1 && head > 0);
    }
    log_info(component, "view ", slot->name(), " v", slot->def().version(), " at offset ",
             slot->offset(), " of ", head);
  }
  return status::ok();
}

void runtime::impl::spawn_actors() {
  subs_ = std::make_unique<subscription_registry>(slots_.size(), options_.hub_buffer);
  waiters_ = std::make_unique<waiter_registry>(
      [this](size_t view) { return slots_[view]->offset(); });
  hub_ = spawn_hub(*system_, *subs_);
  runners_.assign(slots_.size(), caf::actor{});
  for (auto* slot : spawn_order()) {
    runner_context ctx;
    ctx.slot = slot;
    ctx.log = log_.get();
    ctx.catch_up_batch = std::max<uint64_t>(1, options_.catch_up_batch);
    ctx.live_batch = std::max<uint64_t>(1, options_.live_batch);
    ctx.published = [this](view_slot& s, uint64_t offset, std::vector<offset_changes>& changes) {
      published(s, offset, changes);
    };
    runners_[slot->index()] = spawn_view_runner(*system_, std::move(ctx));
  }
  std::vector<caf::actor> log_runners;
  for (auto& slot : slots_)
    if (!slot->upstream) log_runners.push_back(runners_[slot->index()]);
  sequencer_context ctx;
  ctx.log = log_.get();
  ctx.counters = &counters_;
  ctx.validate = [this](const checked_append& r) { return run_validators(r); };
  ctx.committed = [log_runners](uint64_t head) {
    for (auto& runner : log_runners) caf::anon_send(runner, head_atom::value, head);
  };
  sequencer_ = spawn_sequencer(*system_, std::move(ctx));
}

// --- impl: shutdown --------------------------------------------------------

void runtime::impl::stop() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  if (!running_) return;
  {
    std::unique_lock<std::shared_mutex> appends(append_mu_);
    accepting_ = false;
  }
  // No lock is held while the actors finish: their callbacks may call back
  // into the runtime (reads stay served until storage closes below).
  // In-flight appends are committed and answered before the sequencer quits.
  stop_and_wait(sequencer_);
  for (auto& runner : runners_) stop_and_wait(runner);
  stop_and_wait(hub_);
  waiters_->shutdown();
  {
    std::unique_lock<std::shared_mutex> lock(storage_mu_);
    running_ = false;
    sequencer_ = caf::actor{};
    hub_ = caf::actor{};
    runners_.clear();
    subs_->clear();
    close_storage();
  }
  log_info(component, "stopped");
}

void runtime::impl::close_storage() {
  for (auto& slot : slots_) {
    slot->set_stopped();
    slot->detach_store();
  }
  log_.reset();
  env_.reset();
}

// --- impl: writes ----------------------------------------------------------

status runtime::impl::run_validators(const checked_append& request) const {
  if (validators_.empty()) return status::ok();
  const auto& events = request.events();
  for (size_t i = 0; i < events.size(); ++i) {
    auto it = validators_.find(events[i].type);
    if (it == validators_.end()) continue;
    status s;
    try {
      s = it->second(events[i]);
    } catch (const std::exception& e) {
      s = status{errc::invalid_event, e.what()};
    }
    if (!s) {
      if (events.size() > 1) return {s.code(), "events[" + std::to_string(i) + "]: " + s.message()};
      return s;
    }
  }
  return status::ok();
}

void runtime::impl::append(append_request request,
                           std::function<void(result<append_outcome>)> done) {
  auto checked = check_append(std::move(request));
  if (!checked) return done(checked.error());
  append(std::move(*checked), std::move(done));
}

void runtime::impl::append(checked_append request,
                           std::function<void(result<append_outcome>)> done) {
  if (auto s = run_validators(request); !s) return done(s);
  {
    std::shared_lock<std::shared_mutex> lock(append_mu_);
    if (accepting_) {
      caf::anon_send(sequencer_, append_job{std::move(request), std::move(done)});
      return;
    }
  }
  done(status{errc::unavailable, "the runtime is shutting down"});
}

// --- impl: publishing (runner threads) -------------------------------------

void runtime::impl::published(view_slot& slot, uint64_t offset,
                              std::vector<offset_changes>& changes) {
  waiters_->notify(slot.index(), offset);
  for (auto* consumer : slot.downstream)
    caf::anon_send(runners_[consumer->index()], head_atom::value, offset);
  if (!changes.empty() && subs_->count(slot.index()) > 0) publish_changes(slot, changes);
}

void runtime::impl::publish_changes(view_slot& slot, const std::vector<offset_changes>& changes) {
  if (!subs_->try_reserve()) {
    log_warn(component, "hub is full: subscribers of ", slot.name(), " lose a batch");
    subs_->mark_lost(slot.index());
    return;
  }
  auto items = std::make_shared<std::vector<change_ptr>>();
  for (const auto& entry : changes) {
    for (const auto& c : entry.changes) {
      auto item = std::make_shared<published_change>();
      item->offset = entry.offset;
      item->key = c.key;
      item->value = c.value;
      item->wire = std::make_shared<const std::string>(wire_of(entry.offset, c.key, c.value));
      items->push_back(std::move(item));
    }
  }
  caf::anon_send(hub_, publish_atom::value, change_batch_msg{slot.index(), std::move(items)});
}

// --- impl: reads -----------------------------------------------------------

view_slot* runtime::impl::find(const std::string& name) const {
  if (running_) {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  for (auto& slot : slots_)
    if (slot->name() == name) return slot.get();
  return nullptr;
}

uint64_t runtime::impl::head() const {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  return log_ ? log_->head() : 0;
}

std::vector<view_info> runtime::impl::views() const {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  uint64_t head = log_ ? log_->head() : 0;
  std::vector<view_info> out;
  for (auto& slot : slots_) out.push_back(slot->info(head, options_.live_batch));
  return out;
}

result<view_info> runtime::impl::view(const std::string& name) const {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  auto* slot = find(name);
  if (!slot) return unknown_view(name);
  return slot->info(log_ ? log_->head() : 0, options_.live_batch);
}

result<std::vector<event>> runtime::impl::read_log(uint64_t from, size_t limit) const {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  if (!log_) return unavailable();
  return log_->read(from, limit);
}

result<view_snapshot> runtime::impl::snapshot(const std::string& view) const {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  auto* slot = find(view);
  if (!slot) return unknown_view(view);
  if (!slot->store()) return unavailable();
  return slot->store()->snapshot();
}

result<json> runtime::impl::query(const std::string& view, const std::string& name,
                                  const query_params& params) const {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  auto* slot = find(view);
  if (!slot) return unknown_view(view);
  auto q = slot->def().queries().find(name);
  if (q == slot->def().queries().end())
    return status{errc::unknown_query, "view '" + view + "' has no query named '" + name + "'"};
  if (!slot->store()) return unavailable();
  auto snap = slot->store()->snapshot();
  if (!snap) return snap.error();
  try {
    auto out = q->second(*snap, params);
    if (!out) return out;
    if (!out->is_object()) {
      json wrapped = json::object();
      wrapped["result"] = std::move(*out);
      *out = std::move(wrapped);
    }
    (*out)["offset"] = snap->offset();
    return out;
  } catch (const std::exception& e) {
    return status{errc::invalid_parameter, "query " + view + "/" + name + " failed: " + e.what()};
  }
}

result<changelog_page> runtime::impl::changes_since(const std::string& view, uint64_t from,
                                                    size_t limit) const {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  auto* slot = find(view);
  if (!slot) return unknown_view(view);
  if (!slot->store()) return unavailable();
  return slot->store()->changes_since(from, limit);
}

result<std::vector<dead_letter>> runtime::impl::dead_letters(const std::string& view) const {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  auto* slot = find(view);
  if (!slot) return unknown_view(view);
  if (!slot->store()) return unavailable();
  return slot->store()->dead_letters();
}

void runtime::impl::wait_for(const std::string& view, uint64_t offset,
                             std::chrono::milliseconds timeout, std::function<void(status)> done) {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  auto* slot = find(view);
  if (!slot) {
    lock.unlock();
    done(unknown_view(view));
    return;
  }
  if (!running_) {
    lock.unlock();
    done(status{errc::unavailable, "the runtime is shutting down"});
    return;
  }
  waiters_->wait(slot->index(), offset, waiter_registry::clock::now() + timeout, std::move(done));
}

// --- impl: subscriptions and supervision -----------------------------------

result<uint64_t> runtime::impl::subscribe(subscription_filter filter,
                                          std::shared_ptr<change_sink> sink) {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  auto* slot = find(filter.view);
  if (!slot) return unknown_view(filter.view);
  if (!running_) return unavailable();
  return subs_->add(slot->index(), std::move(filter), std::move(sink));
}

void runtime::impl::unsubscribe(uint64_t subscription) {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  if (subs_) subs_->remove(subscription);
}

status runtime::impl::restart_view(const std::string& name) {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  auto* slot = find(name);
  if (!slot) return unknown_view(name);
  if (!running_) return unavailable();
  if (!slot->failed()) return status::ok();
  slot->set_active(false);
  caf::anon_send(runners_[slot->index()], restart_atom::value);
  log_info(component, "restarting view ", name);
  return status::ok();
}

caf::actor runtime::impl::sequencer() const {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  return sequencer_;
}

runtime_metrics runtime::impl::metrics() const {
  std::shared_lock<std::shared_mutex> lock(storage_mu_);
  runtime_metrics m;
  m.head = log_ ? log_->head() : 0;
  auto load = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  m.append_requests = load(counters_.requests);
  m.append_failures = load(counters_.failures);
  m.appended_events = load(counters_.events);
  m.append_commits = load(counters_.commits);
  m.append_latency_count = load(counters_.latency_count);
  m.append_latency_sum_us = load(counters_.latency_sum_us);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < sequencer_counters::latency_buckets; ++i) {
    cumulative += load(counters_.latency_histogram[i]);
    uint64_t bound = i < std::size(sequencer_counters::latency_bounds_us)
                         ? sequencer_counters::latency_bounds_us[i]
                         : std::numeric_limits<uint64_t>::max();
    m.append_latency_buckets.emplace_back(bound, cumulative);
  }
  if (subs_) {
    m.subscriptions = subs_->total();
    m.hub_batches = subs_->delivered_batches();
    m.hub_lost = subs_->lost_batches();
  }
  for (auto& slot : slots_) {
    auto info = slot->info(m.head, options_.live_batch);
    view_metrics v;
    v.name = info.name;
    v.version = info.version;
    v.offset = info.offset;
    v.lag = info.lag;
    v.status = info.status;
    v.applied = load(slot->applied);
    v.commits = load(slot->commits);
    m.views.push_back(std::move(v));
  }
  return m;
}

// --- runtime: forwards to impl ---------------------------------------------

runtime::runtime(runtime_options options) : impl_(std::make_unique<impl>(std::move(options))) {}
runtime::~runtime() = default;
void runtime::add_view(view_def def) { impl_->add_view(std::move(def)); }
void runtime::add_validator(std::string type, std::function<status(const event_input&)> check) {
  impl_->add_validator(std::move(type), std::move(check));
}
status runtime::start() { return impl_->start(); }
void runtime::stop() { impl_->stop(); }
bool runtime::running() const { return impl_->running(); }
void runtime::append(append_request request, std::function<void(result<append_outcome>)> done) {
  impl_->append(std::move(request), std::move(done));
}
void runtime::append(checked_append request, std::function<void(result<append_outcome>)> done) {
  impl_->append(std::move(request), std::move(done));
}
uint64_t runtime::head() const { return impl_->head(); }
durability runtime::durability_mode() const { return impl_->durability_mode(); }
std::vector<view_info> runtime::views() const { return impl_->views(); }
result<view_info> runtime::view(const std::string& name) const { return impl_->view(name); }
result<std::vector<event>> runtime::read_log(uint64_t from, size_t limit) const {
  return impl_->read_log(from, limit);
}
result<view_snapshot> runtime::snapshot(const std::string& view) const {
  return impl_->snapshot(view);
}
result<json> runtime::query(const std::string& view, const std::string& name,
                            const query_params& params) const {
  return impl_->query(view, name, params);
}
result<changelog_page> runtime::changes_since(const std::string& view, uint64_t from,
                                              size_t limit) const {
  return impl_->changes_since(view, from, limit);
}
result<std::vector<dead_letter>> runtime::dead_letters(const std::string& view) const {
  return impl_->dead_letters(view);
}
void runtime::wait_for(const std::string& view, uint64_t offset,
                       std::chrono::milliseconds timeout, std::function<void(status)> done) {
  impl_->wait_for(view, offset, timeout, std::move(done));
}
result<uint64_t> runtime::subscribe(subscription_filter filter, std::shared_ptr<change_sink> sink) {
  return impl_->subscribe(std::move(filter), std::move(sink));
}
void runtime::unsubscribe(uint64_t subscription) { impl_->unsubscribe(subscription); }
status runtime::restart_view(const std::string& name) { return impl_->restart_view(name); }
caf::actor_system& runtime::system() { return impl_->system(); }
runtime_metrics runtime::metrics() const { return impl_->metrics(); }

}  // namespace derive
