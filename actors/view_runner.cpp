#include "actors/view_runner.hpp"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <string>
#include <thread>
#include <utility>

#include <caf/all.hpp>

#include "actors/batch_txn.hpp"
#include "core/crash_point.hpp"
#include <derive/logging.hpp>
#include "actors/messages.hpp"

namespace derive {
namespace {

constexpr std::string_view component = "runner";

// A version not served yields to live work only while it catches up (more
// than a live batch behind its source) and gains on its source: over each
// window of `building_recent` it must apply at least twice what its source
// grew by, so that its trail shrinks at least as fast as live input arrives.
// After a window in which it did not, it builds the next one without
// yielding (as when no live work is pending). Yielding alone can apply as
// little as one small batch per building_wait, less than continuous live
// input may bring: the guard makes a rebuild converge all the same, at worst
// at half the rate of a version that never yields.
//
// The pace of a version built beside the served one: the guard's window, and
// when it last saw live work pending (its batches are then a sixty-fourth).
// The runner and replay_until keep one each.
class building_pace {
 public:
  using clock = std::chrono::steady_clock;
  // Asked before each batch; `offset`: the version's, `head`: its source's.
  // Always false for a served version (it never yields).
  bool may_yield(const runner_context& ctx, uint64_t offset, uint64_t head) {
    if (ctx.slot->serving.load() || !ctx.live_pending) return false;
    const auto now = clock::now();
    if (since_ == clock::time_point{} || offset < offset_ || head < head_) {
      start(now, offset, head);  // the first batch, or the view started over
    } else if (now - since_ >= ctx.building_recent) {
      gaining_ = offset - offset_ >= 2 * (head - head_);
      start(now, offset, head);
    }
    return gaining_ && head > offset && head - offset > ctx.live_batch;
  }
  // Live work was pending just now.
  void saw_live() { live_seen_ = clock::now(); }
  // It saw live work pending within building_recent: a yielding version
  // commits batches of a sixty-fourth.
  bool live_recent(const runner_context& ctx, bool may_yield) const {
    return may_yield && live_seen_ != clock::time_point{} &&
           clock::now() - live_seen_ < ctx.building_recent;
  }

 private:
  void start(clock::time_point now, uint64_t offset, uint64_t head) {
    since_ = now;
    offset_ = offset;
    head_ = head;
  }
  clock::time_point since_{};
  uint64_t offset_ = 0, head_ = 0;  // at since_
  bool gaining_ = true;
  clock::time_point live_seen_{};
};

// A thread that runs one job at a time beside a runner: the commit of a
// catch-up batch while the runner applies the next. A thread per commit
// (std::async) cost a thread's stack and a malloc arena's pages each time.
class committer {
 public:
  committer() : thread_([this] { loop(); }) {}
  ~committer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  committer(const committer&) = delete;
  committer& operator=(const committer&) = delete;

  // REQUIRES: the previous job's future is ready.
  std::future<status> run(std::function<status()> job) {
    std::future<status> done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = std::move(job);
      promise_ = {};
      done = promise_.get_future();
    }
    cv_.notify_one();
    return done;
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stop_ || job_; });
      if (!job_) return;  // stopping, nothing left
      auto job = std::exchange(job_, nullptr);
      auto promise = std::move(promise_);
      lock.unlock();
      try {
        promise.set_value(job());
      } catch (...) {
        promise.set_exception(std::current_exception());
      }
      job = nullptr;
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::function<status()> job_;
  std::promise<status> promise_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

// What one batch produced.
struct batch_result {
  std::vector<offset_changes> changes;  // as committed once the commit succeeds
  std::vector<blind_change> blind;      // of `changes`, for the commit
  std::vector<key_change> private_changes;  // never published
  std::vector<dead_letter> dead;
  uint64_t new_offset = 0;
  std::optional<view_failure> failure;
  uint64_t inputs = 0;
};

struct runner_state {
  static inline const char* name = "derive.view_runner";
  runner_context ctx;
  uint64_t target = 0;     // the source's head as last announced
  bool scheduled = false;  // a work_atom is queued
  bool failed = false;     // stopped on an error until restart_atom
  // While storage is full: the delay before the next attempt (0: not paused).
  std::chrono::milliseconds retry_delay{0};
  // The state keys the last committed batch touched, with their committed
  // values: the next batch reads them from memory (the runner is the store's
  // only writer). Kept while it holds at most batch_bytes / warm_fraction.
  batch_txn::warm_cache warm;
  // A rebuild after an erasure (erase_atom): `rebuilt` runs once the view's
  // offset reaches `rebuild_to` (or the view fails).
  uint64_t rebuild_to = 0;
  std::function<void()> rebuilt;
  // A version not served: its pace, and since when it has been putting its
  // next batch off for live work (epoch: not).
  building_pace pace;
  std::chrono::steady_clock::time_point deferred_since{};
  bool forced = false;  // the next batch runs although live work is pending
  // A catch-up batch committing beside the runner (commit_beside); the
  // batch is freed here, on the runner's thread (freed on the committing
  // one, glibc's arenas made it cost more than the overlap gained).
  struct commit_in_flight {
    std::future<status> done;
    std::shared_ptr<const batch_result> batch;
  };
  std::optional<commit_in_flight> in_flight;
  // Started by a commit beside the runner, ended once it caught up. Last:
  // joined before the context its job uses goes.
  std::unique_ptr<committer> beside;
};

constexpr std::chrono::milliseconds first_retry{50};
constexpr std::chrono::milliseconds longest_retry{2000};
constexpr uint64_t warm_fraction = 16;
using runner_actor = caf::stateful_actor<runner_state>;


// Runs `apply` as one input of `txn`; the error text when it threw.
template <class F>
std::optional<std::string> run_input(batch_txn& txn, uint64_t offset, F&& apply) {
  txn.begin_input(offset);
  try {
    apply();
    txn.commit_input();
    return std::nullopt;
  } catch (const std::exception& e) {
    txn.discard_input();
    return std::string(e.what());
  } catch (...) {
    txn.discard_input();
    return std::string("unknown exception");
  }
}

// Applies the outcome of one failed input to `out`; false: stop the batch.
bool on_input_error(const view_def& def, uint64_t offset, const std::string& what,
                    batch_result& out) {
  if (def.policy() == failure_policy::dead_letter) {
    log_warn(component, "view ", def.name(), ": dead letter at offset ", offset, ": ", what);
    out.dead.push_back({offset, what});
    return true;
  }
  out.failure = view_failure{offset, "view " + def.name() + " failed at offset " +
                                         std::to_string(offset) + ": " + what};
  return false;
}

// Milliseconds of CLOCK_MONOTONIC_COARSE: a few nanoseconds to read, where
// steady_clock costs tens per input; its resolution (a few ms) is plenty for
// a bound of catch_up_time.
int64_t coarse_now_ms() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
  return int64_t{t.tv_sec} * 1000 + t.tv_nsec / 1'000'000;
}

// When a batch must end after its current input: bytes, time, or a stop.
struct batch_bounds {
  uint64_t bytes;
  int64_t deadline_ms;
  const std::atomic<bool>* stopping;
  // A version built beside the served one: ends its batch once live work is
  // pending (yield_to_live), and notes that it saw some.
  const std::function<bool()>* live = nullptr;
  mutable bool saw_live = false;
  // Set when the commit beside the runner failed: the batch will be dropped.
  const bool* dropped = nullptr;

  // A version built beside the served one commits smaller batches (yielding
  // the views' writer lock to the live views sooner), and much smaller ones
  // while live work comes and goes (`live_recent`).
  static constexpr uint64_t building_share = 8;
  static constexpr uint64_t live_share = 64;
  // Inputs between two looks at live work (at least; each read starts with one).
  static constexpr uint64_t yield_every = 64;
  static uint64_t share(const runner_context& ctx, bool live_recent) {
    if (ctx.slot->serving.load()) return 1;
    return live_recent ? live_share : building_share;
  }
  // `yield` (only if building_pace::may_yield): a version not served ends its
  // batch early for live work.
  batch_bounds(const runner_context& ctx, bool live_recent, bool yield)
      : bytes(std::max<uint64_t>(1, ctx.batch_bytes / share(ctx, live_recent))),
        deadline_ms(coarse_now_ms() +
                    std::max<int64_t>(1, ctx.batch_time.count() /
                                             static_cast<int64_t>(share(ctx, live_recent)))),
        stopping(&ctx.slot->stopping) {
    if (yield) live = &ctx.live_pending;
  }
  // Checked between chunks of inputs: a version built beside the served one
  // that applied something commits it and lets pending live work run.
  bool yield_to_live(bool progressed) const {
    if (!live || !progressed || !(*live)()) return false;
    saw_live = true;
    return true;
  }
  // A batch applies at least one input before its bytes or time count
  // (`progressed`): on a busy machine the deadline can pass before the first
  // input, and a batch without progress would read as the end of the source.
  bool reached(const batch_txn& txn, bool progressed) const {
    if (stopping->load(std::memory_order_relaxed) || (dropped && *dropped)) return true;
    return progressed && (txn.bytes() >= bytes || coarse_now_ms() >= deadline_ms);
  }
};

uint64_t source_head(const runner_context& ctx) {
  return ctx.slot->upstream ? ctx.slot->upstream->offset() : ctx.log->head();
}

// Behind by more than a live batch: batches are catch-up batches.
bool catching_up(const runner_state& st, uint64_t offset) {
  return st.target > offset && st.target - offset > st.ctx.live_batch;
}

// `limit` inputs, or a sixty-fourth of them while live work comes and goes.
uint64_t yielding_limit(uint64_t limit, bool live_recent) {
  return live_recent ? std::max<uint64_t>(1, limit / batch_bounds::live_share) : limit;
}

uint64_t batch_limit(const runner_state& st, uint64_t offset, bool live_recent) {
  return yielding_limit(catching_up(st, offset) ? st.ctx.catch_up_batch : st.ctx.live_batch,
                        live_recent);
}

// Reads up to `limit` events after `offset` (read_chunk at a time) and
// applies them, until the bounds are reached.
result<batch_result> apply_log(runner_context& ctx, batch_txn& txn, uint64_t offset,
                               uint64_t limit, const batch_bounds& bounds) {
  batch_result out;
  out.new_offset = offset;
  const auto& def = ctx.slot->def();
  uint64_t remaining = limit;
  std::vector<event> events;  // reused by every chunk
  uint64_t seen = 0;
  while (remaining > 0 && !bounds.reached(txn, out.new_offset > offset) &&
         !bounds.yield_to_live(out.new_offset > offset)) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining, ctx.read_chunk));
    if (auto st = ctx.log->read(out.new_offset + 1, n, events, ctx.read_chunk_bytes); !st)
      return st;
    for (const auto& e : events) {
      if (bounds.reached(txn, out.new_offset > offset)) return out;
      if (seen > 0 && seen % batch_bounds::yield_every == 0 &&
          bounds.yield_to_live(out.new_offset > offset))
        return out;
      ++seen;
      if (e.redacted) {  // erased: it contributes nothing to any view
        out.new_offset = e.offset;
        --remaining;
        continue;
      }
      auto error = run_input(txn, e.offset, [&] { def.event_fn()(e, txn); });
      if (error && !on_input_error(def, e.offset, *error, out)) return out;
      out.new_offset = e.offset;
      --remaining;
    }
    if (events.empty()) break;  // the head (a read may end early at its byte bound)
  }
  return out;
}

// Reads up to `limit` upstream changelog entries after `offset` (read_chunk
// at a time, at most yield_every: an entry, one upstream offset's changes,
// may be large and a read has no byte bound) and applies them, until the
// bounds are reached.
result<batch_result> apply_upstream(runner_context& ctx, batch_txn& txn, uint64_t offset,
                                    uint64_t limit, const batch_bounds& bounds) {
  auto* upstream = ctx.slot->upstream;
  batch_result out;
  out.new_offset = offset;
  const auto& def = ctx.slot->def();
  uint64_t remaining = limit;
  while (remaining > 0 && !bounds.reached(txn, out.new_offset > offset) &&
         !bounds.yield_to_live(out.new_offset > offset)) {
    const size_t n = static_cast<size_t>(
        std::min<uint64_t>({remaining, ctx.read_chunk, batch_bounds::yield_every}));
    auto page = upstream->store()->changes_since(out.new_offset, n);
    if (!page) return page.error();
    if (!page->served)
      return status{errc::not_found, "the changelog of upstream view " + upstream->name() +
                                         " no longer holds the offsets after " +
                                         std::to_string(out.new_offset) + "; rebuild this view"};
    for (const auto& entry : page->entries) {
      if (bounds.reached(txn, out.new_offset > offset)) return out;
      auto error = run_input(txn, entry.offset, [&] {
        for (const auto& c : entry.changes) {
          upstream_change change;
          change.offset = entry.offset;
          change.key = c.key;
          if (c.value) change.value = json::parse(*c.value);
          def.change_fn()(change, txn);
        }
      });
      if (error && !on_input_error(def, entry.offset, *error, out)) {
        out.new_offset = entry.offset - 1;
        return out;
      }
      out.new_offset = entry.offset;
      --remaining;
    }
    // Every upstream change up to the upstream's offset is applied: so is the
    // upstream's offset itself, even when its last events changed nothing.
    if (page->entries.size() < n) {
      out.new_offset = std::max(out.new_offset, page->view_offset);
      break;
    }
  }
  return out;
}

// A version not served lets pending live work run first: it puts its next
// batch off by building_pause while live work is pending, but for at most
// building_wait in a row, so that it moves on under continuous live work
// (then one small batch runs whole). True: put off (a work_atom is scheduled).
// REQUIRES: the pace lets it yield (building_pace::may_yield).
bool defer_to_live(runner_actor* self) {
  auto& st = self->state;
  using clock = std::chrono::steady_clock;
  if (!st.ctx.live_pending()) {
    st.deferred_since = {};
    return false;
  }
  const auto now = clock::now();
  st.pace.saw_live();
  if (st.deferred_since == clock::time_point{}) st.deferred_since = now;
  if (now - st.deferred_since >= st.ctx.building_wait) {
    st.deferred_since = {};
    st.forced = true;
    return false;
  }
  st.scheduled = true;
  self->delayed_send(self, st.ctx.building_pause, work_atom::value);
  return true;
}

// Runs the rebuild's callback once the view reached its target, or stopped.
void check_rebuilt(runner_state& st) {
  if (!st.rebuilt) return;
  if (!st.failed && st.ctx.slot->offset() < st.rebuild_to) return;
  auto done = std::exchange(st.rebuilt, nullptr);
  done();
}

void fail(runner_actor* self, uint64_t at, std::string error, bool durable) {
  auto& st = self->state;
  log_error(component, error);
  if (durable) {
    if (auto s = st.ctx.slot->store()->set_failure(view_failure{at, error}); !s)
      log_error(component, "view ", st.ctx.slot->name(), ": cannot record failure: ",
                s.to_string());
  }
  st.failed = true;
  st.warm = {};
  st.ctx.slot->set_failed(at, std::move(error));
  check_rebuilt(st);
}

// The view's storage is full: the view pauses (its status stays running or
// catching_up, its lag grows) and retries the batch with a growing delay; it
// resumes by itself once space returns. Nothing is lost: the batch is
// recomputed from the log.
void pause(runner_actor* self, const status& error) {
  auto& st = self->state;
  const bool first = st.retry_delay.count() == 0;
  st.retry_delay = first ? first_retry : std::min(2 * st.retry_delay, longest_retry);
  if (first)
    log_warn(component, "view ", st.ctx.slot->name(), " paused at offset ", st.ctx.slot->offset(),
             ": ", error.to_string(), "; retrying until space returns");
  st.scheduled = true;
  self->delayed_send(self, st.retry_delay, work_atom::value);
}

// Adds what `batch` wrote (keys and values of its state and private changes)
// to the slot's counters; returns the number of key changes.
uint64_t count_written(view_slot& slot, const batch_result& batch) {
  uint64_t bytes = 0;
  uint64_t largest = 0;
  uint64_t changes = 0;
  auto add = [&](const key_change& c) {
    ++changes;
    uint64_t value = c.value ? c.value->size() : 0;
    bytes += c.key.size() + value;
    largest = std::max(largest, value);
  };
  for (const auto& entry : batch.changes)
    for (const auto& c : entry.changes) add(c);
  for (const auto& c : batch.private_changes) add(c);
  slot.bytes_written.fetch_add(bytes, std::memory_order_relaxed);
  uint64_t seen = slot.largest_value.load(std::memory_order_relaxed);
  while (largest > seen &&
         !slot.largest_value.compare_exchange_weak(seen, largest, std::memory_order_relaxed)) {
  }
  return changes;
}

// A batch that leaves the view behind is followed by another right away: a
// step between the two lets the next reuse the pages this one freed
// (view_store::step), so the file grows by about one batch's pages, not two.
// Worth a transaction after a catch-up batch or one that changed many keys
// (a live batch of docsearch's postings touches most of the index's leaves).
// A failed step changes nothing: the next commit only finds less free room.
void step_between_batches(view_slot& slot) {
  if (auto s = slot.store()->step(); !s)
    log_warn(component, "view ", slot.name(), ": no step between batches: ", s.to_string());
}

// Whether the source is ahead of `offset`, as of now: the head announced
// while the batch ran is still in the mailbox (a batch that reached the
// head as known at its start is mostly not the last one of a catch-up).
bool still_behind(runner_state& st, uint64_t offset) {
  st.target = std::max(st.target, source_head(st.ctx));
  return st.target > offset;
}

// Commits an applied batch and publishes it: what follows the applying, on
// the runner's thread or beside it. Touches the slot and the context only,
// never the runner's state. `changed`: the batch's key changes.
status commit_and_publish(const runner_context& ctx, batch_result& batch, uint64_t inputs,
                          uint64_t& changed) {
  auto& slot = *ctx.slot;
  crash_point("after_log_sync_before_view_commit");
  std::unique_lock<std::mutex> publishing;
  if (ctx.commit_mu) publishing = std::unique_lock<std::mutex>(*ctx.commit_mu);
  if (auto s = slot.store()->commit(batch.changes, batch.blind, batch.new_offset, batch.dead,
                                    batch.private_changes);
      !s)
    return s;
  crash_point("after_view_commit");
  slot.applied.fetch_add(inputs, std::memory_order_relaxed);
  slot.commits.fetch_add(1, std::memory_order_relaxed);
  changed = count_written(slot, batch);
  slot.publish_offset(batch.new_offset);
  slot.note_progress(batch.new_offset);
  if (ctx.published) ctx.published(slot, batch.new_offset, batch.changes);
  return status::ok();
}

// A failed commit of the batch applied from `offset`: storage full pauses
// the view, anything else stops it.
void commit_failed(runner_actor* self, uint64_t offset, const status& s) {
  if (s.code() == errc::storage_full) return pause(self, s);
  fail(self, offset + 1, "view " + self->state.ctx.slot->name() + " cannot commit: " + s.to_string(),
       false);
}

// A commit succeeded: a paused view has resumed.
void resumed(runner_state& st) {
  if (st.retry_delay.count() == 0) return;
  st.retry_delay = std::chrono::milliseconds{0};
  log_info(component, "view ", st.ctx.slot->name(), " resumed: space returned");
}

// Waits for the commit in flight, if any. False: it failed (handled as an
// inline commit's failure), and whatever was applied on it must be dropped.
bool settle(runner_actor* self) {
  auto& st = self->state;
  if (!st.in_flight) return true;
  status s;
  try {
    s = st.in_flight->done.get();
  } catch (const std::exception& e) {  // bad_alloc, or a publication callback's throw
    s = status{errc::io_error, std::string("the commit beside the runner threw: ") + e.what()};
  }
  st.in_flight.reset();
  if (!s) {
    st.warm = {};
    commit_failed(self, st.ctx.slot->offset(), s);  // where the failed commit left it
    return false;
  }
  resumed(st);
  check_rebuilt(st);
  return true;
}

// Whether `batch` (applied while `behind`) commits beside the runner: not
// while paused (the batch after a failing commit would be dropped again).
bool commits_beside(runner_state& st, const batch_result& batch, bool behind) {
  const auto& slot = *st.ctx.slot;
  return st.ctx.commit_beside && behind && st.retry_delay.count() == 0 &&
         !st.ctx.before_commit && !batch.failure && slot.serving.load() &&
         !slot.stopping.load(std::memory_order_relaxed) && still_behind(st, batch.new_offset);
}

// Starts the commit of `batch` on a thread of its own and keeps the
// batch's warm cache for the next one. False: no thread (the batch is left
// as it was, to commit inline).
bool commit_beside(runner_actor* self, batch_result& batch, batch_txn& txn) {
  auto& st = self->state;
  try {
    if (!st.beside) st.beside = std::make_unique<committer>();
  } catch (const std::system_error& e) {
    log_warn(component, "view ", st.ctx.slot->name(), ": commits inline: ", e.what());
    return false;
  }
  auto owned = std::make_shared<batch_result>(std::move(batch));
  auto done = st.beside->run([&ctx = st.ctx, b = owned.get(), inputs = txn.inputs()] {
    uint64_t changed = 0;
    if (auto s = commit_and_publish(ctx, *b, inputs, changed); !s) return s;
    if (ctx.committed) ctx.committed(*ctx.slot);
    if (!ctx.slot->stopping.load(std::memory_order_relaxed)) step_between_batches(*ctx.slot);
    return status::ok();
  });
  st.in_flight = runner_state::commit_in_flight{std::move(done), std::move(owned)};
  if (txn.cache_bytes() <= st.ctx.batch_bytes / warm_fraction) st.warm = txn.warm();
  return true;
}

// Processes one batch: reads, applies, commits, publishes; on an error the
// view stops (fail). With a commit in flight it applies from where that
// batch ends, and waits for it before it reads the store or commits.
// `may_yield`: the trail guard lets a version not served yield to live work.
void process_batch(runner_actor* self, bool may_yield) {
  auto& st = self->state;
  auto& slot = *st.ctx.slot;
  uint64_t offset = st.in_flight ? st.in_flight->batch->new_offset : slot.offset();
  bool dropped = false;
  std::function<void()> before_read;
  if (st.in_flight) before_read = [self, &dropped] { dropped = !settle(self); };
  batch_txn txn(*slot.store(), std::exchange(st.warm, {}), std::move(before_read));
  const bool live_recent = st.pace.live_recent(st.ctx, may_yield);
  auto limit = batch_limit(st, offset, live_recent);
  const bool behind = catching_up(st, offset);
  const bool forced = std::exchange(st.forced, false);
  batch_bounds bounds(st.ctx, live_recent, may_yield && !forced);
  bounds.dropped = &dropped;
  auto batch = slot.upstream ? apply_upstream(st.ctx, txn, offset, limit, bounds)
                             : apply_log(st.ctx, txn, offset, limit, bounds);
  if (bounds.saw_live) st.pace.saw_live();
  if (!settle(self) || dropped) return;
  if (!batch) {
    fail(self, offset + 1,
         "view " + slot.name() + " cannot read its input: " + batch.error().to_string(), false);
    return;
  }
  batch->changes = txn.take_changes();
  batch->blind = txn.take_blind_changes();
  batch->private_changes = txn.take_private_changes();
  if (batch->new_offset > offset || !batch->dead.empty()) {
    if (st.ctx.before_commit) {
      if (auto s = st.ctx.before_commit(slot, batch->new_offset); !s) {
        if (s.code() == errc::storage_full) return pause(self, s);
        fail(self, offset + 1, "view " + slot.name() + " cannot commit: " + s.to_string(), false);
        return;
      }
    }
    if (commits_beside(st, *batch, behind) && commit_beside(self, *batch, txn)) return;
    uint64_t changed = 0;
    if (auto s = commit_and_publish(st.ctx, *batch, txn.inputs(), changed); !s)
      return commit_failed(self, offset, s);
    resumed(st);
    if (st.target <= batch->new_offset + st.ctx.live_batch) slot.set_caught_up();
    if (st.ctx.committed) st.ctx.committed(slot);
    if ((behind || changed >= st.ctx.step_changes) && !batch->failure &&
        !slot.stopping.load(std::memory_order_relaxed) && still_behind(st, batch->new_offset))
      step_between_batches(slot);
  }
  if (batch->failure) {
    fail(self, batch->failure->offset, std::move(batch->failure->error), true);
    return;
  }
  if (txn.cache_bytes() <= st.ctx.batch_bytes / warm_fraction) st.warm = txn.warm();
  if (st.target <= batch->new_offset + st.ctx.live_batch) {
    slot.set_caught_up();
    st.beside.reset();  // idle until the next catch-up: its thread goes
  }
}

// The keep_through a view restores at after an erasure: a derived view's
// checkpoint holds its state at an upstream offset below the first redacted
// event, so it is as valid as a view of the log's, provided the upstream's
// (rebuilt) changelog still holds the offsets after it; else it rebuilds from
// offset 0 (whatever it held on disk goes).
uint64_t restore_point(view_slot& slot, uint64_t keep_through) {
  if (!slot.upstream || keep_through == 0) return keep_through;
  const uint64_t at = slot.store()->checkpoint_at_or_before(keep_through);
  if (at == 0) return 0;
  auto page = slot.upstream->store()->changes_since(at, 0);
  return page && page->served ? keep_through : 0;
}

void schedule(runner_actor* self) {
  auto& st = self->state;
  if (st.scheduled || st.failed) return;
  if (st.ctx.slot->stopping.load(std::memory_order_relaxed)) return;  // stop_atom follows
  if (st.ctx.slot->offset() >= st.target) return;
  st.scheduled = true;
  self->send(self, work_atom::value);
}

caf::behavior view_runner(runner_actor* self, runner_context ctx) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  // The durable record, not the slot: restart_view may already have marked
  // the slot active, with its restart_atom still on the way.
  st.failed = st.ctx.slot->store()->failure().has_value();
  st.target = source_head(st.ctx);
  schedule(self);
  return {
      [=](head_atom, uint64_t head) {
        auto& s = self->state;
        s.target = std::max(s.target, head);
        schedule(self);
      },
      [=](work_atom) {
        auto& s = self->state;
        s.scheduled = false;
        if (s.failed) return;
        // A derived view may learn of upstream progress only from the store.
        s.target = std::max(s.target, source_head(s.ctx));
        const bool may_yield = s.pace.may_yield(s.ctx, s.ctx.slot->offset(), s.target);
        if (may_yield && defer_to_live(self)) return;
        process_batch(self, may_yield);
        check_rebuilt(s);
        // A version built beside the served one lets live work run first.
        if (!s.ctx.slot->serving.load()) std::this_thread::yield();
        schedule(self);
      },
      // Rebuild after an erasure redacted the log from offset keep_through + 1
      // on (or the upstream was rebuilt): restore the newest checkpoint at or
      // before keep_through (none, or 0: reset to offset 0), recording `to`
      // as the store's resume floor, and run `done` once the view's offset
      // reaches `to`.
      [=](erase_atom, uint64_t to, uint64_t keep_through, const done_callback& done) {
        settle(self);
        auto& s = self->state;
        auto& slot = *s.ctx.slot;
        if (s.rebuilt) std::exchange(s.rebuilt, nullptr)();  // superseded
        s.warm = {};
        s.retry_delay = std::chrono::milliseconds{0};
        auto from = slot.store()->restore(restore_point(slot, keep_through), to);
        if (!from) {
          slot.rebuilds_pending.fetch_sub(1);
          fail(self, slot.offset() + 1,
               "view " + slot.label() + " cannot be reset for an erasure: " +
                   from.error().to_string(),
               false);
          if (done.fn) done.fn();
          return;
        }
        slot.publish_offset(*from);
        slot.rebuilds_pending.fetch_sub(1);  // asked by the eraser: not served before
        s.failed = false;
        slot.set_active(true);
        s.rebuild_to = to;
        s.rebuilt = done.fn ? done.fn : [] {};
        s.target = std::max(s.target, source_head(s.ctx));
        log_info(component, "view ", slot.label(), " rebuilds from offset ", *from, " up to ", to,
                 " after an erasure");
        check_rebuilt(s);
        schedule(self);
      },
      [=](restart_atom) {  // a failed view has no commit in flight
        auto& s = self->state;
        if (!s.failed) return;
        if (auto r = s.ctx.slot->store()->set_failure(std::nullopt); !r)
          log_error(component, "view ", s.ctx.slot->name(), ": cannot clear failure: ",
                    r.to_string());
        s.failed = false;
        s.ctx.slot->set_active(false);
        s.target = std::max(s.target, source_head(s.ctx));
        log_info(component, "view ", s.ctx.slot->name(), " restarted at offset ",
                 s.ctx.slot->offset());
        schedule(self);
      },
      [=](rebuild_atom) {
        settle(self);
        auto& s = self->state;
        auto& slot = *s.ctx.slot;
        if (auto r = slot.store()->reset(); !r) {
          slot.rebuilds_pending.fetch_sub(1);
          log_error(component, "view ", slot.label(), ": cannot rebuild: ", r.to_string());
          return;
        }
        s.failed = false;
        s.warm = {};
        slot.publish_offset(0);
        slot.rebuilds_pending.fetch_sub(1);
        slot.set_active(true);
        log_info(component, "view ", slot.label(), " rebuilds from offset 0");
        if (s.ctx.rebuilt) s.ctx.rebuilt(slot);
        s.target = std::max(s.target, source_head(s.ctx));
        schedule(self);
      },
      // Runs `fn` on the runner's thread (a new consumer joins `downstream`).
      [=](run_atom, const done_callback& fn) {
        settle(self);  // its publication reads `downstream`
        if (fn.fn) fn.fn();
      },
      [=](stop_atom, const done_callback& done) {
        settle(self);
        self->state.rebuilt = nullptr;  // the eraser learns of the stop by its guard
        self->state.ctx.slot->set_stopped();
        if (done.fn) done.fn();
        self->quit();
      },
  };
}

}  // namespace

namespace {

// replay_until's defer_to_live, on a thread of its own: sleeps while live
// work is pending, at most building_wait; true: it waited all of it (the
// next batch runs whole). REQUIRES: the pace lets it yield.
bool wait_for_live_work(const runner_context& ctx, const std::atomic<bool>& cancel,
                        building_pace& pace) {
  const auto since = std::chrono::steady_clock::now();
  while (ctx.live_pending()) {
    pace.saw_live();
    if (cancel.load(std::memory_order_relaxed) ||
        std::chrono::steady_clock::now() - since >= ctx.building_wait)
      return true;
    std::this_thread::sleep_for(ctx.building_pause);
  }
  return false;
}

}  // namespace

status replay_until(runner_context& ctx, uint64_t until, const std::atomic<bool>& cancel,
                    uint64_t& inputs, std::optional<uint64_t>& failed_offset) {
  auto& slot = *ctx.slot;
  building_pace pace;  // its source's head is `until`: it only gains
  while (slot.store()->offset() < until) {
    if (cancel.load(std::memory_order_relaxed))
      return {errc::unavailable, "the rebuild of view " + slot.name() + " was stopped"};
    const uint64_t offset = slot.store()->offset();
    const bool may_yield = pace.may_yield(ctx, offset, until);
    const bool forced = may_yield && wait_for_live_work(ctx, cancel, pace);
    const bool live_recent = pace.live_recent(ctx, may_yield);
    batch_txn txn(*slot.store(), {});
    const uint64_t limit =
        std::min<uint64_t>(until - offset, yielding_limit(ctx.catch_up_batch, live_recent));
    const batch_bounds bounds(ctx, live_recent, may_yield && !forced);
    auto batch = slot.upstream ? apply_upstream(ctx, txn, offset, limit, bounds)
                               : apply_log(ctx, txn, offset, limit, bounds);
    if (!batch) return batch.error();
    batch->changes = txn.take_changes();
    batch->blind = txn.take_blind_changes();
    batch->private_changes = txn.take_private_changes();
    if (batch->new_offset > offset || !batch->dead.empty()) {
      if (auto s = slot.store()->commit(batch->changes, batch->blind, batch->new_offset,
                                        batch->dead, batch->private_changes);
          !s)
        return s;
      inputs += txn.inputs();
    }
    if (bounds.saw_live) pace.saw_live();
    if (batch->failure) {
      failed_offset = batch->failure->offset;
      return {errc::invalid_parameter, batch->failure->error};
    }
    if (batch->new_offset == offset)
      return {errc::not_found, "the source of view " + slot.name() + " ends at offset " +
                                   std::to_string(offset) + ", before " + std::to_string(until)};
  }
  return status::ok();
}

caf::actor spawn_view_runner(caf::actor_system& sys, runner_context ctx, bool detached) {
  if (detached) return sys.spawn<caf::detached>(view_runner, std::move(ctx));
  return sys.spawn(view_runner, std::move(ctx));
}

}  // namespace derive
