#include "actors/eraser.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <thread>

#include <caf/all.hpp>

#include <derive/logging.hpp>

#include "actors/audit.hpp"
#include "actors/messages.hpp"
#include "actors/runtime_state.hpp"
#include "core/append_check.hpp"
#include "core/crash_point.hpp"
#include "core/hash.hpp"
#include "core/json_text.hpp"

namespace derive {
namespace {

constexpr std::string_view component = "eraser";

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

status stopped() { return {errc::unavailable, "the runtime stopped before the erasure finished; "
                                              "it resumes when the runtime starts again"}; }

// A one-shot answer from another thread.
struct answer {
  std::mutex mu;
  std::condition_variable cv;
  bool set = false;
  status st;
  void give(status s) {
    std::lock_guard<std::mutex> lock(mu);
    if (set) return;
    set = true;
    st = std::move(s);
    cv.notify_all();
  }
  status wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return set; });
    return st;
  }
};

// Gives `unavailable` when dropped unanswered (its message went to an actor
// that stopped), so no wait outlives the runtime's actors.
struct answer_guard {
  std::shared_ptr<answer> a = std::make_shared<answer>();
  ~answer_guard() { a->give(stopped()); }
};

}  // namespace

void append_offset_ranges(std::string& out, const std::vector<uint64_t>& offsets) {
  out += '[';
  for (size_t i = 0; i < offsets.size();) {
    size_t j = i;
    while (j + 1 < offsets.size() && offsets[j + 1] == offsets[j] + 1) ++j;
    if (i > 0) out += ',';
    out += '[' + std::to_string(offsets[i]) + ',' + std::to_string(offsets[j]) + ']';
    i = j + 1;
  }
  out += ']';
}

namespace {

// The receipt's event data: deterministic for a subject's request, so that a
// resumed erasure replays its receipt instead of appending a second one.
std::string receipt_data(const erasure_receipt& r) {
  std::string out = "{\"subject_hash\":\"" + r.subject_hash +
                    "\",\"requested_at\":" + std::to_string(r.requested_at) +
                    ",\"redacted\":" + std::to_string(r.offsets.size()) + ",\"offsets\":";
  append_offset_ranges(out, r.offsets);
  out += ",\"views\":[";
  for (size_t i = 0; i < r.views.size(); ++i) {
    if (i > 0) out += ',';
    append_json_string(out, r.views[i]);
  }
  out += "]}";
  return out;
}

}  // namespace

std::string erasure_subject_hash(const std::string& subject) {
  char hex[33];
  std::snprintf(hex, sizeof hex, "%016llx%016llx",
                static_cast<unsigned long long>(detail::hash64(subject, detail::hash_a)),
                static_cast<unsigned long long>(detail::hash64(subject, detail::hash_b)));
  return hex;
}

std::string erasure_receipt::to_json() const {
  std::string data = receipt_data(*this);
  return "{\"offset\":" + std::to_string(offset) + ",\"ts\":" + std::to_string(ts) +
         ",\"type\":\"" + erasure_event_type + "\"," + data.substr(1);
}

eraser::eraser(runtime::impl& rt, std::vector<std::string> resume, bool rebuild_owed)
    : rt_(rt), rebuild_owed_(rebuild_owed) {
  for (auto& subject : resume) queue_.push_back({std::move(subject), nullptr});
  for (const auto& rule : rt_.options.retention)
    stats_.rules.push_back({rule.pattern, static_cast<uint64_t>(rule.keep.count())});
  thread_ = std::thread([this] { run(); });
}

eraser::~eraser() { stop(); }

void eraser::request(std::string subject, callback done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stop_) {
      queue_.push_back({std::move(subject), std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  if (done) done(stopped());
}

void eraser::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
  for (auto& p : queue_)
    if (p.done) p.done(stopped());
  queue_.clear();
  for (auto& done : sweeps_)
    if (done) done(stopped());
  sweeps_.clear();
}

bool eraser::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stop_;
}

void eraser::sweep(sweep_callback done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stop_) {
      sweeps_.push_back(std::move(done));
      wake_.notify_one();
      return;
    }
  }
  if (done) done(stopped());
}

int64_t eraser::clock_ms() const {
  const auto& clock = rt_.options.log.clock;
  return clock ? clock() : now_ms();
}

bool eraser::next(std::vector<pending>& batch, std::vector<sweep_callback>& sweeps, bool& due) {
  using namespace std::chrono;
  // The log clock may be a test's: it is read at least every second.
  const auto poll = std::min<milliseconds>(rt_.options.retention_interval, seconds(1));
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (stop_) return false;
    due = clock_ms() >= next_sweep_at_;
    if (!queue_.empty() || !sweeps_.empty() || due) break;
    if (next_sweep_at_ == INT64_MAX) wake_.wait(lock);
    else wake_.wait_for(lock, poll);
  }
  batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
  sweeps.swap(sweeps_);
  return true;
}

void eraser::run() {
  // A scrub that a stop or a crash interrupted.
  if (auto pending = rt_.log->scrub_pending(); pending && *pending) {
    if (auto st = on_writer([](event_log& log) { return log.scrub(); }); !st)
      log_error(component, "cannot scrub the log's free pages: ", st.to_string());
  }
  std::vector<pending> batch;
  std::vector<sweep_callback> sweeps;
  bool due = false;
  while (next(batch, sweeps, due)) {
    if (!batch.empty()) {
      if (auto st = erase(batch); !st) {
        log_error(component, "erasure of ", batch.size(), " subject(s) failed: ", st.to_string());
        for (auto& p : batch)
          if (p.done) p.done(st);
      }
    }
    if (due || !sweeps.empty()) {
      // Without rules only the first sweep (finishing marks left pending) runs.
      next_sweep_at_ = rt_.options.retention.empty()
                           ? INT64_MAX
                           : clock_ms() + rt_.options.retention_interval.count();
      auto swept = stopping() ? result<retention_sweep>(stopped()) : sweep_now();
      if (!swept && !stopping())
        log_error(component, "retention sweep failed: ", swept.error().to_string());
      for (auto& done : sweeps)
        if (done) done(swept);
    }
    batch.clear();
    sweeps.clear();
  }
}

status eraser::on_writer(std::function<status(event_log&)> fn) {
  auto guard = std::make_shared<answer_guard>();
  auto a = guard->a;
  caf::anon_send(rt_.sequencer,
                 writer_job{[fn = std::move(fn), guard](event_log& log) { guard->a->give(fn(log)); }});
  guard.reset();
  return a->wait();
}

status eraser::erase(std::vector<pending>& batch) {
  std::vector<std::string> subjects;
  for (auto& p : batch)
    if (std::find(subjects.begin(), subjects.end(), p.subject) == subjects.end())
      subjects.push_back(p.subject);
  const int64_t now = now_ms();
  // (1) Durable before any work.
  if (auto st = on_writer([&](event_log& log) { return log.record_erasures(subjects, now); }); !st)
    return st;
  crash_point("erasure_recorded");
  auto requests = rt_.log->erasure_requests();
  if (!requests) return requests.error();
  std::map<std::string, int64_t> requested_at;
  for (auto& r : *requests) requested_at[r.subject] = r.requested_at;
  log_info(component, "forgetting ", subjects.size(), " subject(s)");

  // (2) The log and the idempotency keys.
  std::vector<std::vector<uint64_t>> offsets;
  auto redact = on_writer([&](event_log& log) {
    auto r = log.redact_subjects(subjects);
    if (!r) return r.error();
    offsets = std::move(*r);
    return status::ok();
  });
  if (!redact) return redact;
  crash_point("erasure_redacted");

  // (3) The views.
  std::vector<std::string> views;
  const bool any = std::any_of(offsets.begin(), offsets.end(),
                               [](const auto& o) { return !o.empty(); });
  if (any || rebuild_owed_) {
    // Each view restarts from its newest checkpoint before the batch's
    // first redacted event (nothing redacted: from offset 1).
    uint64_t first = 0;
    for (const auto& o : offsets)
      if (!o.empty() && (first == 0 || o.front() < first)) first = o.front();
    if (auto st = rebuild_views(views, first > 0 ? first - 1 : 0); !st) return st;
    rebuild_owed_ = false;
    crash_point("erasure_views_rebuilt");
    // (4) The views' freed pages (their old state and changelogs).
    if (auto pages = rt_.views_env->scrub_free_pages(); !pages) return pages.error();
  }
  crash_point("erasure_views_scrubbed");

  // (5) One receipt per subject.
  std::map<std::string, erasure_receipt> receipts;
  for (size_t i = 0; i < subjects.size(); ++i) {
    erasure_receipt r;
    r.subject_hash = erasure_subject_hash(subjects[i]);
    r.requested_at = requested_at.count(subjects[i]) ? requested_at[subjects[i]] : now;
    r.offsets = std::move(offsets[i]);
    if (!r.offsets.empty()) r.views = views;
    auto outcome = append_receipt(
        {erasure_event_type, "erasure/" + r.subject_hash, "", receipt_data(r)},
        std::string(erasure_event_type) + "." + r.subject_hash + "." +
            std::to_string(r.requested_at));
    if (!outcome) return outcome.error();
    r.offset = outcome->first_offset;
    auto e = rt_.log->read(r.offset, 1);
    if (e && !e->empty()) r.ts = e->front().ts;
    receipts[subjects[i]] = std::move(r);
  }
  crash_point("erasure_receipts_appended");

  // (6) Done: the subject index and the requests go.
  if (auto st = on_writer([&](event_log& log) { return log.finish_erasures(subjects); }); !st)
    return st;
  crash_point("erasure_finished");
  // (4) The log's freed pages (the records, index entries and keys).
  if (auto st = on_writer([](event_log& log) { return log.scrub(); }); !st) return st;
  // (7) No file keeps the subjects' bytes once this returns.
  if (auto st = compact(); !st) return st;
  log_info(component, "forgot ", subjects.size(), " subject(s)");
  for (auto& p : batch)
    if (p.done) p.done(receipts[p.subject]);
  return status::ok();
}

status eraser::compact() {
  using namespace std::chrono;
  auto pending = rt_.log->compact_pending();
  if (!pending) return pending.error();
  if (!*pending) return status::ok();
  // Transactions open longer than this (a client's snapshot) delay it; it
  // is retried, then left to the next forget or the next start.
  constexpr auto quiesce = seconds(5);
  constexpr int attempts = 3;
  for (environment* env : {rt_.env.get(), rt_.views_env.get()}) {
    for (int attempt = 1;; ++attempt) {
      microseconds paused{0};
      status st = env->compact_online(quiesce, &paused);
      if (st) {
        log_info(component, "compacted ", env->path(), " online; its transactions waited ",
                 paused.count() / 1000, " ms");
        break;
      }
      if (st.code() != errc::unavailable || attempt == attempts || stopping())
        return {st.code(), st.message() + " (the erased data leaves the files at the next "
                                          "forget or the next start)"};
      std::this_thread::sleep_for(milliseconds(50));
    }
  }
  crash_point("erasure_compacted");
  return on_writer([](event_log& log) { return log.compacted(); });
}

result<append_outcome> eraser::append_receipt(event_input receipt, std::string idempotency_key) {
  append_request req;
  req.events.push_back(std::move(receipt));
  req.idempotency_key = idempotency_key;
  auto checked = check_append(std::move(req));
  if (!checked) return checked.error();
  auto guard = std::make_shared<answer_guard>();
  auto a = guard->a;
  auto outcome = std::make_shared<result<append_outcome>>(stopped());
  rt_.submit(std::move(*checked), [guard, outcome](result<append_outcome> o) {
    *outcome = std::move(o);
    guard->a->give(status::ok());
  });
  guard.reset();
  if (auto st = a->wait(); !st) return st;
  if (!*outcome && outcome->error().code() == errc::idempotency_key_reused) {
    // A resumed step whose receipt differs (e.g. in the views): the first stands.
    auto known = rt_.log->find_idempotency_key(idempotency_key);
    if (known && *known) *outcome = **known;
  }
  return *outcome;
}

// Every version of every view but the processors' (whose outputs are
// appended, not recomputed) is rebuilt from the redacted log, with the one
// mechanism of view versions (docs/storage.md, "View versions"):
//  - each served copy (a derived view with the copy of its source) gets a new
//    generation built beside it, from its newest checkpoint at or before
//    keep_through; the old copy serves reads and subscriptions meanwhile;
//  - a version not served (one built beside, a copy a runtime::rebuild
//    builds) is rebuilt in place (nobody reads it), from its own checkpoint;
//    it is not served before its rebuild has started (rebuilds_pending);
//  - a stale version (kept from disk, no code) cannot be recomputed: it is
//    emptied first, and so is a retired one, so that the versions reading
//    them start from nothing (a served stale one answers `unavailable` until
//    a declared version is ready: there is no copy able to serve).
// Once every new generation has caught up they are cut over together
// (subscribers reset, offsets never backwards) and the old copies, with the
// copies derived from them, retired (dropped) before this returns.
status eraser::rebuild_views(std::vector<std::string>& rebuilt, uint64_t keep_through) {
  std::vector<view_slot*> frozen;
  {
    std::shared_lock<std::shared_mutex> storage(rt_.storage_mu);  // a rebuild may add slots
    for (auto& slot : rt_.slots)
      if (!slot->processor && !rt_.outboxes.count(slot->index()) &&
          (slot->stale || !slot->runner || slot->retired))
        frozen.push_back(slot.get());
  }
  // First, so that the copies of the versions derived from a stale one
  // start from nothing.
  for (auto* slot : frozen) {
    if (slot->serving.load()) slot->erasing.store(true, std::memory_order_release);
    if (auto st = slot->store()->reset(); !st) return st;
    slot->publish_offset(0);
  }
  std::vector<view_slot*> copies, in_place, old;
  if (auto st = start_generations(keep_through, copies, in_place, old); !st) return st;
  if (auto st = rebuild_in_place(in_place, keep_through); !st) return st;
  if (auto st = cut_over(copies, old); !st) return st;
  if (!frozen.empty()) {
    std::lock_guard<std::mutex> cutover(rt_.cutover_mu);
    rt_.try_cutover();
    for (auto* slot : frozen)
      if (slot->serving.load())  // no declared version could be served: stays gated
        log_error(component, "view ", slot->label(),
                  " is a stale version still served; it stays unavailable until a declared "
                  "version of the view is ready");
  }
  for (auto* slot : in_place) rt_.pub->erasure_rebuilt(*slot);
  for (auto* slot : frozen)
    if (!slot->serving.load()) slot->erasing.store(false, std::memory_order_release);
  auto add = [&](const view_slot* slot) {
    if (std::find(rebuilt.begin(), rebuilt.end(), slot->name()) == rebuilt.end())
      rebuilt.push_back(slot->name());
  };
  for (auto* slot : copies) add(slot);
  for (auto* slot : in_place) add(slot);
  return status::ok();
}

status eraser::start_generations(uint64_t keep_through, std::vector<view_slot*>& copies,
                                 std::vector<view_slot*>& in_place,
                                 std::vector<view_slot*>& old) {
  using namespace std::chrono;
  // As runtime::rebuild: lifecycle_mu keeps start() and stop() out (stop()
  // holds it while it waits for this thread, hence the try), storage_mu
  // exclusive while slots are added.
  std::unique_lock<std::mutex> lifecycle(rt_.lifecycle_mu, std::defer_lock);
  while (!lifecycle.try_lock()) {
    if (stopping()) return stopped();
    std::this_thread::sleep_for(milliseconds(5));
  }
  std::unique_lock<std::shared_mutex> storage(rt_.storage_mu);
  if (!rt_.running || stopping()) return stopped();
  // Groups sources first; a group whose source got a copy is copied with it.
  std::vector<std::pair<size_t, size_t>> by_depth;
  for (size_t g = 0; g < rt_.groups.size(); ++g) {
    size_t depth = 0;
    for (auto at = rt_.groups[g].upstream; at; at = rt_.groups[*at].upstream) ++depth;
    by_depth.emplace_back(depth, g);
  }
  std::stable_sort(by_depth.begin(), by_depth.end());
  // First, under the cutover lock: every version not served starts over in
  // place and is not served until its rebuild has started (ready() refuses a
  // pending rebuild). Otherwise a version built beside from the unredacted
  // log could be cut over while the copies below are opened, and serve the
  // subject's data after the forget returned.
  {
    std::lock_guard<std::mutex> cutover(rt_.cutover_mu);
    for (auto& slot : rt_.slots) {
      view_slot* s = slot.get();
      if (s->processor || rt_.outboxes.count(s->index()) || s->retired || s->superseded ||
          s->stale || !s->runner || s->serving.load())
        continue;
      s->rebuilds_pending.fetch_add(1);
      in_place.push_back(s);
    }
  }
  auto unmark = [&] {  // on an error: none of them starts over
    for (auto* s : in_place) s->rebuilds_pending.fetch_sub(1);
    in_place.clear();
  };
  auto mark_derived_from = [&](const view_slot* source) {
    std::lock_guard<std::mutex> cutover(rt_.cutover_mu);
    for (auto& slot : rt_.slots) {
      view_slot* s = slot.get();
      bool derived = false;
      for (auto* at = s->upstream; at && !derived; at = at->upstream) derived = at == source;
      if (!derived || s->processor || s->retired || s->stale || !s->runner ||
          std::find(in_place.begin(), in_place.end(), s) != in_place.end())
        continue;
      s->rebuilds_pending.fetch_add(1);
      in_place.push_back(s);
    }
  };
  auto now = rt_.serving_now();  // no cutover from here: every candidate waits
  std::vector<bool> covered(rt_.groups.size(), false);
  auto cover = [&](size_t g) {
    std::vector<size_t> todo{g};
    while (!todo.empty()) {
      size_t at = todo.back();
      todo.pop_back();
      covered[at] = true;
      for (size_t d : rt_.groups[at].downstream) todo.push_back(d);
    }
  };
  for (auto [depth, g] : by_depth) {
    if (covered[g]) continue;
    view_slot* served = (*now)[g];
    if (served->stale || !served->runner) {
      // Emptied above and never copied (no code): what derives from it is
      // not copied either but starts over in place, from the emptied source.
      cover(g);
      mark_derived_from(served);
      continue;
    }
    if (served->processor) continue;
    // A copy already built beside it (runtime::rebuild): rebuilt in place.
    const bool building = std::any_of(
        rt_.groups[g].slots.begin(), rt_.groups[g].slots.end(), [&](const view_slot* s) {
          return s != served && !s->stale && !s->retired && s->runner &&
                 s->def().version() == served->def().version() &&
                 s->upstream == served->upstream && s->generation() > served->generation();
        });
    cover(g);
    if (building) continue;
    if (auto st = rt_.rebuild_served(g, keep_through, &copies); !st) {
      unmark();
      return st;
    }
  }
  // The old copies: retired after the cutover.
  std::lock_guard<std::mutex> cutover(rt_.cutover_mu);
  for (auto& slot : rt_.slots) {
    view_slot* s = slot.get();
    if (!s->processor && !rt_.outboxes.count(s->index()) && !s->retired && s->superseded)
      old.push_back(s);
  }
  return status::ok();
}

status eraser::rebuild_in_place(std::vector<view_slot*>& slots, uint64_t keep_through) {
  std::vector<std::pair<size_t, view_slot*>> order;
  for (auto* slot : slots) {
    size_t depth = 0;
    for (auto* at = slot; at->upstream; at = at->upstream) ++depth;
    order.emplace_back(depth, slot);
  }
  std::stable_sort(order.begin(), order.end(),
                   [](auto& a, auto& b) { return a.first < b.first; });
  status result = status::ok();
  size_t sent = 0;
  for (size_t at = 0; at < order.size() && result;) {
    std::vector<std::shared_ptr<answer>> answers;
    const size_t depth = order[at].first;
    for (; at < order.size() && order[at].first == depth; ++at, ++sent) {
      auto* slot = order[at].second;
      const uint64_t to = slot->upstream ? slot->upstream->offset() : rt_.log->head();
      auto guard = std::make_shared<answer_guard>();
      answers.push_back(guard->a);
      caf::anon_send(slot->runner, erase_atom::value, to, keep_through,
                     done_callback{[guard] { guard->a->give(status::ok()); }});
    }
    for (auto& a : answers)
      if (auto st = a->wait(); !st) result = st;
    if (result && stopping()) result = stopped();
  }
  // Those never told to start over may be served again (as they are).
  for (size_t i = sent; i < order.size(); ++i) order[i].second->rebuilds_pending.fetch_sub(1);
  return result;
}

status eraser::cut_over(std::vector<view_slot*>& copies, std::vector<view_slot*>& old) {
  using namespace std::chrono;
  constexpr auto poll = milliseconds(5);
  // (a) Every copy caught up with its source.
  for (;;) {
    if (stopping()) return stopped();
    std::shared_lock<std::shared_mutex> storage(rt_.storage_mu);
    bool all = true;
    for (auto* c : copies) {
      if (rt_.caught_up(*c)) continue;
      if (c->failed())  // where the served copy did not fail
        return {errc::unavailable, "the copy " + c->label() + " built for an erasure failed (" +
                                    c->info(0, 0).error + "); the old copy is served; the "
                                    "erasure resumes at the next forget or start"};
      all = false;
    }
    if (all) break;
    storage.unlock();
    std::this_thread::sleep_for(poll);
  }
  crash_point("erasure_generation_built");
  // (b) Released together: the cutover switches them in one step (a copy
  // that fell behind meanwhile switches at its next commit).
  {
    std::lock_guard<std::mutex> cutover(rt_.cutover_mu);
    for (auto* c : copies) c->held = false;
    rt_.try_cutover();
  }
  for (;;) {
    if (stopping()) return stopped();
    if (std::none_of(old.begin(), old.end(), [](auto* s) { return s->serving.load(); })) break;
    std::this_thread::sleep_for(poll);
  }
  crash_point("erasure_cut_over");
  // (c) The old copies are dropped (runtime::impl::retire, on the audit
  // thread; the cutover asked for it, asked again here for those it did not
  // switch itself): no store serves or keeps the erased data.
  if (rt_.audits)
    for (auto* s : old) rt_.audits->enqueue([this, s] { rt_.retire(*s); });
  for (;;) {
    if (stopping()) return stopped();
    if (std::all_of(old.begin(), old.end(), [](auto* s) { return s->retired.load(); })) break;
    std::this_thread::sleep_for(poll);
  }
  return status::ok();
}

}  // namespace derive
