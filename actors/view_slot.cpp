#include "actors/view_slot.hpp"

namespace derive {

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

void view_slot::attach(std::unique_ptr<view_store> store) {
  store_ = std::move(store);
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

}  // namespace derive
