#include "web/limits.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include <sys/resource.h>

#include "web/errors.hpp"

namespace derive::web {
namespace {

// Above this many entries a map is swept of entries that carry no state.
constexpr size_t sweep_floor = 1024;

std::chrono::milliseconds at_least_1ms(double ms) {
  return std::chrono::milliseconds(std::max<int64_t>(1, static_cast<int64_t>(std::ceil(ms))));
}

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

std::string client_key(const principal& who, std::string_view remote_address) {
  if (who.token) return "sub:" + who.token->sub;
  return "addr:" + std::string(remote_address);
}

rate_limiter::rate_limiter(double rate, double burst)
    : rate_(std::max(0.0, rate)), burst_(std::max(1.0, burst)) {}

std::optional<std::chrono::milliseconds> rate_limiter::take(const std::string& key,
                                                            limit_clock::time_point now) {
  if (rate_ <= 0) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  if (buckets_.size() >= next_sweep_) forget_full(now);
  auto [it, fresh] = buckets_.try_emplace(key, bucket{burst_, now});
  auto& b = it->second;
  if (!fresh) {
    double elapsed = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min(burst_, b.tokens + std::max(0.0, elapsed) * rate_);
    b.at = std::max(b.at, now);
  }
  if (b.tokens >= 1 - 1e-9) {  // rounding of the elapsed time
    b.tokens = std::max(0.0, b.tokens - 1);
    return std::nullopt;
  }
  return at_least_1ms((1 - b.tokens) / rate_ * 1000);
}

// A full bucket is the same as no bucket: forgetting it changes nothing.
void rate_limiter::forget_full(limit_clock::time_point now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    double elapsed = std::chrono::duration<double>(now - it->second.at).count();
    if (it->second.tokens + elapsed * rate_ >= burst_) it = buckets_.erase(it);
    else ++it;
  }
  next_sweep_ = std::max(sweep_floor, 2 * buckets_.size());
}

key_quota::key_quota(size_t max_keys, std::chrono::milliseconds window)
    : max_keys_(max_keys), window_(std::max(window, std::chrono::milliseconds(1))) {}

std::optional<std::chrono::milliseconds> key_quota::take(const std::string& key,
                                                         limit_clock::time_point now) {
  if (max_keys_ == 0) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  if (clients_.size() >= next_sweep_) forget_ended(now);
  auto [it, fresh] = clients_.try_emplace(key, usage{0, now + window_});
  auto& u = it->second;
  if (now >= u.ends) u = usage{0, now + window_};
  if (u.used < max_keys_) {
    ++u.used;
    return std::nullopt;
  }
  return at_least_1ms(std::chrono::duration<double, std::milli>(u.ends - now).count());
}

void key_quota::refund(const std::string& key) {
  if (max_keys_ == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = clients_.find(key);
  if (it != clients_.end() && it->second.used > 0) --it->second.used;
}

void key_quota::forget_ended(limit_clock::time_point now) {
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (now >= it->second.ends) it = clients_.erase(it);
    else ++it;
  }
  next_sweep_ = std::max(sweep_floor, 2 * clients_.size());
}

unsigned append_refusal::retry_after_seconds() const {
  return static_cast<unsigned>(std::max<int64_t>(1, (retry_after.count() + 999) / 1000));
}

append_limits::append_limits(double rate, double burst, size_t max_new_keys,
                             std::chrono::milliseconds window)
    : rate_(rate, burst),
      keys_(max_new_keys, window),
      per_second_(rate),
      max_new_keys_(max_new_keys),
      window_(window) {}

std::optional<append_refusal> append_limits::admit(const std::string& client, bool with_key,
                                                   limit_clock::time_point now) {
  if (auto wait = rate_.take(client, now)) {
    return append_refusal{std::string(http_code::rate_limited),
                          "too many appends from this client: at most " +
                              format_number(per_second_) +
                              " a second; retry after " + std::to_string(wait->count()) + " ms",
                          *wait};
  }
  if (!with_key) return std::nullopt;
  if (auto wait = keys_.take(client, now)) {
    return append_refusal{
        std::string(http_code::too_many_idempotency_keys),
        "this client used its " + std::to_string(max_new_keys_) + " new idempotency keys of the last " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(window_).count()) +
            " s; retry after " + std::to_string(wait->count()) + " ms, or append without a key",
        *wait};
  }
  return std::nullopt;
}

void append_limits::settle(const std::string& client, bool new_key) {
  if (!new_key) keys_.refund(client);
}

connection_limits::connection_limits(size_t max_total, size_t max_per_address)
    : max_total_(max_total), max_per_address_(max_per_address) {}

connection_limits::ticket_ptr connection_limits::admit(const std::string& address,
                                                       std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (total_ >= max_total_) {
      why = "the server has its maximum of " + std::to_string(max_total_) +
            " open connections; retry later";
      return nullptr;
    }
    size_t& mine = per_address_[address];
    if (max_per_address_ && mine >= max_per_address_) {
      if (mine == 0) per_address_.erase(address);
      why = "this address has its maximum of " + std::to_string(max_per_address_) +
            " open connections; close some or retry later";
      return nullptr;
    }
    ++mine;
    ++total_;
  }
  return std::make_shared<const ticket>(*this, address);
}

size_t connection_limits::open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

void connection_limits::release(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  --total_;
  auto it = per_address_.find(address);
  if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
}

size_t effective_max_connections(size_t configured) {
  // Descriptors kept free: LMDB's files, the listener, logs, a refusal.
  constexpr rlim_t reserve = 64;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return configured;
  size_t room = lim.rlim_cur > 2 * reserve ? static_cast<size_t>(lim.rlim_cur - reserve)
                                           : static_cast<size_t>(lim.rlim_cur / 2);
  return std::min(configured, room);
}

namespace {

// Whether `bytes` more fit under `limit` beside `held` (always, when nothing
// is held).
bool fits(size_t held, size_t bytes, size_t limit) {
  return held == 0 || bytes <= limit - std::min(held, limit);
}

}  // namespace

response_budget::verdict response_budget::admit(size_t bytes, const std::string& address,
                                                 charge& out) {
  out.reset();
  if (bytes <= small_bytes) return verdict::admitted;
  std::lock_guard<std::mutex> lock(mu_);
  size_t& mine = by_address_[address];
  if (max_bytes_ != 0) {
    const size_t used = used_.load(std::memory_order_relaxed);
    verdict v = !fits(used, bytes, max_bytes_)                          ? verdict::over_total
                : !fits(mine, bytes, max_bytes_ / address_share) ? verdict::over_address
                                                                        : verdict::admitted;
    if (v != verdict::admitted) {
      if (mine == 0) by_address_.erase(address);
      return v;
    }
  }
  mine += bytes;
  used_.fetch_add(bytes, std::memory_order_relaxed);
  out = charge(this, address, bytes);
  return verdict::admitted;
}

void response_budget::release(const std::string& address, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  used_.fetch_sub(bytes, std::memory_order_relaxed);
  auto it = by_address_.find(address);
  if (it == by_address_.end()) return;
  it->second -= std::min(it->second, bytes);
  if (it->second == 0) by_address_.erase(it);
}

response_budget::charge& response_budget::charge::operator=(charge&& other) noexcept {
  if (this != &other) {
    reset();
    owner_ = std::exchange(other.owner_, nullptr);
    address_ = std::move(other.address_);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void response_budget::charge::reset() {
  if (owner_) owner_->release(address_, bytes_);
  owner_ = nullptr;
  bytes_ = 0;
}

}  // namespace derive::web
