#include "actors/reclaimer.hpp"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <derive/logging.hpp>

namespace derive {
namespace {

constexpr std::string_view component = "reclaimer";
constexpr int reclaim_nice = 10;
// New transactions wait while a compaction waits for the open ones: it
// gives up soon (a client's snapshot may stay open for long) and is retried
// after a pause that doubles with each failure.
constexpr auto quiesce = std::chrono::milliseconds(250);
constexpr auto longest_backoff = std::chrono::minutes(10);

}  // namespace

reclaimer::reclaimer(runtime::impl& rt) : rt_(rt) {
  targets_[0].env = rt_.views_env.get();
  targets_[1].env = rt_.env.get();
  thread_ = std::thread([this] { loop(); });
}

reclaimer::~reclaimer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void reclaimer::loop() {
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), reclaim_nice);
  const auto every = std::max(rt_.options.reclaim.check_every, std::chrono::milliseconds(10));
  std::unique_lock<std::mutex> lock(mu_);
  while (!quit_) {
    if (wake_.wait_for(lock, every, [this] { return quit_; })) break;
    lock.unlock();
    for (auto& t : targets_)
      if (t.env && std::chrono::steady_clock::now() >= t.retry_at && quiet()) reclaim(t);
    lock.lock();
  }
}

bool reclaimer::quiet() const {
  const auto since = std::chrono::steady_clock::now() - rt_.options.reclaim.quiet;
  for (const environment* env : {rt_.env.get(), rt_.views_env.get()})
    if (env && env->last_commit() > since) return false;
  std::shared_lock<std::shared_mutex> storage(rt_.storage_mu);
  if (!rt_.running) return false;
  for (const auto& slot : rt_.slots)
    if (!slot->stale && !slot->retired && !slot->failed() &&
        slot->offset() < rt_.source_head(*slot))
      return false;
  return true;
}

void reclaimer::reclaim(target& t) {
  environment& env = *t.env;
  const auto& o = rt_.options.reclaim;
  auto space = env.space();
  if (!space) {
    log_warn(component, "cannot read the free pages of ", env.path(), ": ",
             space.error().to_string());
    return;
  }
  if (space->free_bytes < o.min_free_bytes ||
      static_cast<double>(space->free_bytes) < o.min_free_fraction * space->file_bytes)
    return;
  const uint64_t reclaimed = env.bytes_reclaimed();
  std::chrono::microseconds paused{0};
  if (status st = env.compact_online(quiesce, &paused); !st) {
    t.backoff = std::min<std::chrono::milliseconds>(
        std::max(t.backoff * 2, std::max(o.quiet, std::chrono::milliseconds(1000))),
        longest_backoff);
    t.retry_at = std::chrono::steady_clock::now() + t.backoff;
    log_warn(component, "cannot compact ", env.path(), " (retried in ", t.backoff.count(),
             " ms): ", st.to_string());
    return;
  }
  t.backoff = std::chrono::milliseconds(0);
  log_info(component, "compacted ", env.path(), " (", space->free_bytes >> 20, " of ",
           space->file_bytes >> 20, " MB free): gave back ",
           (env.bytes_reclaimed() - reclaimed) >> 20, " MB; its transactions waited ",
           paused.count() / 1000, " ms");
}

}  // namespace derive
