#include "actors/view_slot.hpp"

#include <time.h>

#include "actors/messages.hpp"
#include "core/view_names.hpp"

namespace derive {

std::string_view to_string(view_status s) {
  switch (s) {
    case view_status::running: return "running";
    case view_status::catching_up: return "catching_up";
    case view_status::rebuilding: return "rebuilding";
    case view_status::failed: return "failed";
    case view_status::stopped: return "stopped";
    case view_status::stale: return "stale";
  }
  return "stopped";
}

std::string_view to_string(version_role r) {
  switch (r) {
    case version_role::serving: return "serving";
    case version_role::building: return "building";
    case version_role::stale: return "stale";
    case version_role::retired: return "retired";
  }
  return "retired";
}

namespace {

int64_t now_ms() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
  return int64_t{t.tv_sec} * 1000 + t.tv_nsec / 1'000'000;
}

}  // namespace

view_def stale_def(const view_def& like, uint32_t version) {
  view_def def(like.name(), version);
  if (!like.from_log_source()) def.from_view(like.source());
  for (const auto& [name, fn] : like.queries()) def.query(name, fn);
  return def;
}

void view_slot::note_progress(uint64_t offset) {
  int64_t t = now_ms();
  if (window_ms_ == 0) {
    window_ms_ = t;
    window_offset_ = offset;
    return;
  }
  if (t - window_ms_ < 1000) return;
  double rate = static_cast<double>(offset - window_offset_) * 1000.0 /
                static_cast<double>(t - window_ms_);
  rate_.store(rate, std::memory_order_relaxed);
  rate_at_ms_.store(t, std::memory_order_relaxed);
  window_ms_ = t;
  window_offset_ = offset;
}

double view_slot::events_per_second() const {
  // A rate not refreshed for 5 s is stale: the version is idle or stopped.
  if (now_ms() - rate_at_ms_.load(std::memory_order_relaxed) > 5000) return 0;
  return rate_.load(std::memory_order_relaxed);
}

view_version_info view_slot::version_info(uint64_t source_head, uint64_t lag_threshold) const {
  view_version_info v;
  v.version = def_.version();
  v.generation = generation_;
  v.upstream = upstream ? upstream->label() : std::string();
  v.role = serving.load() ? version_role::serving
          : retired.load() ? version_role::retired
                           : (stale ? version_role::stale : version_role::building);
  v.offset = offset();
  v.lag = source_head > v.offset ? source_head - v.offset : 0;
  v.events_per_second = events_per_second();
  if (v.lag > 0 && v.events_per_second > 0)
    v.eta_seconds = static_cast<double>(v.lag) / v.events_per_second;
  v.status = info(source_head, lag_threshold).status;
  return v;
}

void view_slot::attach(std::unique_ptr<view_store> store) {
  store_ = std::move(store);
  label_ = store_->label();
  auto parsed = parse_view_label(def_.name(), label_);
  generation_ = parsed ? parsed->generation : 0;
  publish_offset(store_->offset());
}

void view_slot::set_active(bool rebuilding) {
  std::lock_guard<std::mutex> lock(mu_);
  phase_ = phase::active;
  rebuilding_ = rebuilding;
  error_.clear();
  failed_offset_.reset();
}

void view_slot::set_caught_up() {
  std::lock_guard<std::mutex> lock(mu_);
  rebuilding_ = false;
}

void view_slot::set_failed(uint64_t failed_offset, std::string error) {
  std::lock_guard<std::mutex> lock(mu_);
  phase_ = phase::failed;
  rebuilding_ = false;
  error_ = std::move(error);
  failed_offset_ = failed_offset;
}

void view_slot::set_stopped() {
  std::lock_guard<std::mutex> lock(mu_);
  if (phase_ != phase::failed) phase_ = phase::stopped;
}

bool view_slot::failed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return phase_ == phase::failed;
}

view_info view_slot::info(uint64_t head, uint64_t lag_threshold) const {
  view_info out;
  out.name = def_.name();
  out.version = def_.version();
  out.offset = offset();
  out.lag = head > out.offset ? head - out.offset : 0;
  if (stale) {
    out.status = view_status::stale;
    return out;
  }
  std::lock_guard<std::mutex> lock(mu_);
  switch (phase_) {
    case phase::failed:
      out.status = view_status::failed;
      out.error = error_;
      out.failed_offset = failed_offset_;
      break;
    case phase::stopped:
      out.status = view_status::stopped;
      break;
    case phase::active:
      if (out.lag <= lag_threshold) out.status = view_status::running;
      else out.status = rebuilding_ ? view_status::rebuilding : view_status::catching_up;
      break;
  }
  out.audit = audit_;
  return out;
}

void view_slot::set_audit(audit_result result) {
  std::lock_guard<std::mutex> lock(mu_);
  audit_ = std::move(result);
}

std::optional<audit_result> view_slot::audit() const {
  std::lock_guard<std::mutex> lock(mu_);
  return audit_;
}

void view_slot::request_rebuild() {
  rebuilds_pending.fetch_add(1);
  caf::anon_send(runner, rebuild_atom::value);
}

}  // namespace derive
