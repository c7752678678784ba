#include "actors/waiters.hpp"

namespace derive {

waiter_registry::waiter_registry(std::function<uint64_t(size_t)> offset_of)
    : offset_of_(std::move(offset_of)), timer_([this] { run_timer(); }) {}

waiter_registry::~waiter_registry() { shutdown(); }

void waiter_registry::wait(size_t view, uint64_t offset, clock::time_point deadline,
                           callback done) {
  bool closed = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    closed = closed_;
    if (!closed && offset_of_(view) < offset) {
      uint64_t id = next_id_++;
      bool earliest = deadlines_.empty() || deadline < deadlines_.begin()->first;
      waiters_.emplace(id, waiter{view, offset, deadline, std::move(done)});
      by_offset_[{view, offset}].insert(id);
      deadlines_.emplace(deadline, id);
      if (earliest) wake_.notify_one();
      return;
    }
  }
  if (closed) done(status{errc::unavailable, "the runtime is shutting down"});
  else done(status::ok());
}

waiter_registry::callback waiter_registry::take(uint64_t id) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return {};
  auto& w = it->second;
  auto key = std::make_pair(w.view, w.offset);
  auto ids = by_offset_.find(key);
  ids->second.erase(id);
  if (ids->second.empty()) by_offset_.erase(ids);
  deadlines_.erase({w.deadline, id});
  auto done = std::move(w.done);
  waiters_.erase(it);
  return done;
}

void waiter_registry::notify(size_t view, uint64_t offset) {
  std::vector<callback> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto first = by_offset_.lower_bound({view, 0});
    auto last = by_offset_.upper_bound({view, offset});
    std::vector<uint64_t> ids;
    for (auto it = first; it != last; ++it) ids.insert(ids.end(), it->second.begin(), it->second.end());
    for (auto id : ids) ready.push_back(take(id));
  }
  for (auto& done : ready) done(status::ok());
}

void waiter_registry::run_timer() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!closed_) {
    if (deadlines_.empty()) {
      wake_.wait(lock);
      continue;
    }
    auto next = deadlines_.begin()->first;
    if (clock::now() < next) {
      wake_.wait_until(lock, next);
      continue;
    }
    std::vector<callback> expired;
    auto now = clock::now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now)
      expired.push_back(take(deadlines_.begin()->second));
    lock.unlock();
    for (auto& done : expired)
      done(status{errc::not_caught_up, "the view did not reach the offset in time"});
    lock.lock();
  }
}

void waiter_registry::shutdown() {
  std::vector<callback> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    for (auto& [id, w] : waiters_) all.push_back(std::move(w.done));
    waiters_.clear();
    by_offset_.clear();
    deadlines_.clear();
  }
  wake_.notify_all();
  if (timer_.joinable() && timer_.get_id() != std::this_thread::get_id()) timer_.join();
  for (auto& done : all) done(status{errc::unavailable, "the runtime is shutting down"});
}

size_t waiter_registry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiters_.size();
}

}  // namespace derive
