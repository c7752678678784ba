#include "actors/audit.hpp"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <shared_mutex>
#include <vector>

#include <derive/logging.hpp>

#include "actors/view_runner.hpp"
#include "core/log_scrub.hpp"
#include "core/state_compare.hpp"

namespace derive {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view component = "audit";
constexpr size_t max_differences = 10;
// Nice value of the audit thread: audits yield the CPU to serving.
constexpr int audit_nice = 10;

int64_t unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// The private copies of a view chain, root first, in a scratch environment
// that is removed when this goes.
class scratch_chain {
 public:
  scratch_chain(runtime::impl& rt, std::vector<view_slot*> chain) : rt_(rt), live_(chain) {}
  ~scratch_chain() {
    copies_.clear();
    env_.reset();
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  status open() {
    static std::atomic<uint64_t> counter{0};
    dir_ = (fs::path(rt_.options.data_dir) / "audit" /
            ("view-" + std::to_string(live_.back()->index()) + "-" + std::to_string(++counter)))
               .string();
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::create_directories(dir_, ec);
    if (ec) return {errc::io_error, "cannot create the audit directory " + dir_ + ": " + ec.message()};
    environment_options options = rt_.options.views_storage;
    options.mode = durability::relaxed;  // scratch: never needs to survive a crash
    auto env = environment::open(dir_, options);
    if (!env) return env.error();
    env_ = std::move(*env);
    for (size_t i = 0; i < live_.size(); ++i) {
      view_store_options keep;  // an upstream copy keeps its whole changelog
      if (i + 1 < live_.size()) {
        keep.changelog_retention = 0;
        keep.changelog_max_bytes = 0;
        keep.changelog_max_age = std::chrono::milliseconds(0);
      }
      auto store = view_store::open(*env_, live_[i]->name(), live_[i]->def().version(), keep);
      if (!store) return store.error();
      auto copy = std::make_unique<view_slot>(live_[i]->def(), live_[i]->index());
      copy->attach(std::move(*store));
      if (i > 0) copy->upstream = copies_.back().get();
      copies_.push_back(std::move(copy));
    }
    return status::ok();
  }

  // Brings every copy to `until`, upstream first.
  status replay(uint64_t until, const std::atomic<bool>& cancel, uint64_t& inputs,
                std::string& failed_view, std::optional<uint64_t>& failed_offset) {
    for (auto& copy : copies_) {
      runner_context ctx;
      ctx.slot = copy.get();
      ctx.log = rt_.log.get();
      ctx.catch_up_batch = std::max<uint64_t>(1, rt_.options.catch_up_batch);
      if (rt_.options.catch_up_bytes > 0) ctx.batch_bytes = rt_.options.catch_up_bytes;
      if (rt_.options.catch_up_time.count() > 0) ctx.batch_time = rt_.options.catch_up_time;
      ctx.live_pending = [this] { return rt_.live_work_pending(); };
      if (auto st = replay_until(ctx, until, cancel, inputs, failed_offset); !st) {
        failed_view = copy->name();
        return st;
      }
    }
    return status::ok();
  }

  view_store& store() { return *copies_.back()->store(); }

 private:
  runtime::impl& rt_;
  std::vector<view_slot*> live_;
  std::string dir_;
  std::unique_ptr<environment> env_;
  std::vector<std::unique_ptr<view_slot>> copies_;
};

// The chain of views that `slot` reads, root (a view of the log) first.
std::vector<view_slot*> chain_of(view_slot& slot) {
  std::vector<view_slot*> chain;
  for (auto* at = &slot; at; at = at->upstream) chain.insert(chain.begin(), at);
  return chain;
}

// Compares the live snapshot with the rebuild (both at one offset) into `out`.
status compare(const view_snapshot& live, view_store& rebuilt, audit_result& out) {
  auto expected = rebuilt.snapshot();
  if (!expected) return expected.error();
  auto recorded = stored_digest(live);
  if (!recorded) return recorded.error();
  auto compared = compare_states(live, *expected, max_differences);
  if (!compared) return compared.error();
  // Not recorded yet (a store older than digests, idle since): its state is
  // what there is to compare.
  const auto stored = std::optional<view_digest>(recorded->value_or(compared->actual_walked));
  const view_digest expected_digest = rebuilt.digest();
  out.digest = stored->hex();
  out.expected_digest = expected_digest.hex();
  for (auto& d : compared->differences)
    out.differences.push_back({std::move(d.key), std::move(d.actual), std::move(d.expected)});
  out.more_differences = compared->more;
  out.ok = out.differences.empty() && *stored == expected_digest &&
           compared->actual_walked == *stored;
  if (out.differences.empty() && compared->actual_walked != *stored)
    out.error = "the live view's stored digest " + out.digest +
                " disagrees with its stored state (digest " + compared->actual_walked.hex() +
                "): its meta record was changed underneath";
  else if (out.differences.empty() && *stored != expected_digest)
    out.error = "the digests differ but no key does";
  return status::ok();
}

}  // namespace

result<audit_result> run_audit(runtime::impl& rt, view_slot& slot,
                               const std::atomic<bool>& cancel) {
  const auto started = std::chrono::steady_clock::now();
  auto chain = chain_of(slot);
  for (auto* s : chain)
    if (rt.outboxes.count(s->index()))
      return status{errc::invalid_parameter,
                    "view " + slot.name() + " is or reads processor " + s->name() +
                        ", whose code appends to the log: processors are not audited"};
  audit_result out;
  out.view = slot.name();
  out.version = slot.def().version();
  auto finish = [&]() -> result<audit_result> {
    out.duration_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::steady_clock::now() - started)
                                                .count());
    out.finished_at_ms = unix_ms();
    return out;
  };
  scratch_chain scratch(rt, chain);
  if (auto st = scratch.open(); !st) {
    out.error = "cannot create the audit's private copy: " + st.to_string();
    return finish();
  }
  std::string failed_view;
  std::optional<uint64_t> failed_offset;
  auto replay = [&](uint64_t until) -> bool {
    auto st = scratch.replay(until, cancel, out.events, failed_view, failed_offset);
    if (st) return true;
    if (st.code() == errc::unavailable && cancel) return false;
    out.error = failed_offset ? "the rebuild of view " + failed_view + " failed at offset " +
                                    std::to_string(*failed_offset) + " where the live view did not: " +
                                    st.message()
                              : "the rebuild of view " + failed_view + " failed: " + st.to_string();
    out.offset = failed_offset.value_or(scratch.store().offset());
    return false;
  };
  // Catch up with the live view (which goes on), then compare with one
  // snapshot of it, bringing the rebuild to the snapshot's offset first.
  for (int round = 0; round < 3 && scratch.store().offset() < slot.offset(); ++round)
    if (!replay(slot.offset())) break;
  if (cancel) return status{errc::unavailable, "the audit of view " + slot.name() + " was stopped"};
  if (!out.error.empty()) return finish();
  auto live = slot.store()->snapshot();
  if (!live) {
    out.error = "cannot read the live view: " + live.error().to_string();
    return finish();
  }
  out.offset = live->offset();
  if (live->offset() < scratch.store().offset()) {
    out.error = "the live view went back to offset " + std::to_string(live->offset()) +
                " during the audit (it was reset); audit again";
    return finish();
  }
  if (!replay(live->offset())) {
    if (cancel) return status{errc::unavailable, "the audit of view " + slot.name() + " was stopped"};
    return finish();
  }
  if (auto st = compare(*live, scratch.store(), out); !st)
    out.error = "cannot compare the two copies: " + st.to_string();
  return finish();
}

scrub_result run_scrub(runtime::impl& rt, const std::atomic<bool>& cancel,
                       const std::function<void(const scrub_result&)>& progress) {
  const auto started = std::chrono::steady_clock::now();
  scrub_result out;
  out.running = true;
  scrub_options options;
  options.progress = [&](uint64_t checked, uint64_t head) {
    out.checked = checked;
    out.head = head;
    progress(out);
    return !cancel.load(std::memory_order_relaxed);
  };
  auto report = scrub_log(*rt.log, options);
  out.running = false;
  if (!report) {
    out.error = report.error().to_string();
  } else {
    out.head = report->head;
    out.checked = report->checked;
    for (auto& p : report->problems) out.problems.push_back({p.offset, std::move(p.error)});
    out.more_problems = report->more;
    out.ok = report->ok();
  }
  out.duration_ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::steady_clock::now() - started)
                                              .count());
  out.finished_at_ms = unix_ms();
  return out;
}

// ---- the audit thread ----------------------------------------------------------

auditor::auditor(runtime::impl& rt) : rt_(rt) {
  std::error_code ec;
  fs::remove_all(fs::path(rt_.options.data_dir) / "audit", ec);  // left by a crash
  thread_ = std::thread([this] { loop(); });
}

auditor::~auditor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void auditor::enqueue_audit(size_t slot_index) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back([this, slot_index] {
      std::shared_lock<std::shared_mutex> storage(rt_.storage_mu);
      if (!rt_.log || rt_.audits_cancel) return;
      auto& slot = *rt_.slots[slot_index];
      auto r = run_audit(rt_, slot, rt_.audits_cancel);
      if (r) record_audit(slot, std::move(*r));
      else if (r.error().code() != errc::unavailable)
        log_warn(component, "view ", slot.name(), ": ", r.error().to_string());
    });
  }
  wake_.notify_all();
}

void auditor::enqueue(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_all();
}

void auditor::enqueue_scrub() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back([this] {
      std::shared_lock<std::shared_mutex> storage(rt_.storage_mu);
      if (!rt_.log || rt_.audits_cancel) return;
      auto publish = [this](const scrub_result& r) {
        std::lock_guard<std::mutex> lock(rt_.scrub_mu);
        rt_.scrub = r;
      };
      auto r = run_scrub(rt_, rt_.audits_cancel, publish);
      publish(r);
      if (!r.ok)
        log_warn(component, "log scrub: ", r.problems.size(), " problems", r.error.empty() ? "" : ": ",
                 r.error);
    });
  }
  wake_.notify_all();
}

void auditor::audit_all() {
  std::shared_lock<std::shared_mutex> storage(rt_.storage_mu);  // a rebuild may add slots
  for (auto& slot : rt_.slots) {
    if (rt_.outboxes.count(slot->index())) continue;
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back([this, i = slot->index()] {
      std::shared_lock<std::shared_mutex> storage(rt_.storage_mu);
      if (!rt_.log || rt_.audits_cancel) return;
      auto& s = *rt_.slots[i];
      if (s.retired) return;
      if (auto r = run_audit(rt_, s, rt_.audits_cancel)) record_audit(s, std::move(*r));
    });
  }
}

void auditor::loop() {
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), audit_nice);
  const auto interval = rt_.options.audit_interval;
  auto next_round = std::chrono::steady_clock::now() + interval;
  std::unique_lock<std::mutex> lock(mu_);
  while (!quit_) {
    if (jobs_.empty()) {
      if (interval.count() > 0) {
        if (wake_.wait_until(lock, next_round) == std::cv_status::timeout) {
          next_round = std::chrono::steady_clock::now() + interval;
          lock.unlock();
          audit_all();
          lock.lock();
        }
      } else {
        wake_.wait(lock);
      }
      continue;
    }
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
}

void record_audit(view_slot& slot, audit_result result) {
  if (result.ok)
    log_info(component, "view ", slot.name(), " v", result.version, " audited at offset ",
             result.offset, ": ok, digest ", result.digest);
  else
    log_warn(component, "view ", slot.name(), " v", result.version, " FAILED its audit at offset ",
             result.offset, ": ", result.differences.size(), " keys differ",
             result.error.empty() ? "" : "; ", result.error);
  slot.set_audit(std::move(result));
}

}  // namespace derive
