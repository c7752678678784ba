#include "core/env_gate.hpp"

namespace derive {

void env_gate::enter() {
  std::unique_lock<std::mutex> lock(mu_);
  const auto self = std::this_thread::get_id();
  cv_.wait(lock, [&] {
    if (!closed_) return true;
    auto it = holders_.find(self);
    return it != holders_.end() && it->second > 0;
  });
  ++out_;
  ++holders_[self];
}

void env_gate::leave(std::thread::id holder) {
  std::lock_guard<std::mutex> lock(mu_);
  --out_;
  if (auto it = holders_.find(holder); it != holders_.end() && --it->second == 0)
    holders_.erase(it);
  if (out_ == 0) cv_.notify_all();
}

bool env_gate::close(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  closed_ = true;
  if (cv_.wait_for(lock, timeout, [&] { return out_ == 0; })) return true;
  closed_ = false;
  cv_.notify_all();
  return false;
}

void env_gate::open() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = false;
  cv_.notify_all();
}

}  // namespace derive
