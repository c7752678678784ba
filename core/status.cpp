#include <derive/status.hpp>

namespace derive {

std::string_view to_string(errc c) {
  switch (c) {
    case errc::ok: return "ok";
    case errc::invalid_json: return "invalid_json";
    case errc::invalid_event: return "invalid_event";
    case errc::invalid_parameter: return "invalid_parameter";
    case errc::invalid_idempotency_key: return "invalid_idempotency_key";
    case errc::idempotency_key_reused: return "idempotency_key_reused";
    case errc::not_found: return "not_found";
    case errc::unknown_view: return "unknown_view";
    case errc::unknown_query: return "unknown_query";
    case errc::not_caught_up: return "not_caught_up";
    case errc::payload_too_large: return "payload_too_large";
    case errc::storage_full: return "storage_full";
    case errc::unavailable: return "unavailable";
    case errc::io_error: return "io_error";
    case errc::corruption: return "corruption";
    case errc::not_supported: return "not_supported";
  }
  return "unknown";
}

std::string status::to_string() const {
  if (is_ok()) return "ok";
  std::string s{derive::to_string(code_)};
  s += ": ";
  s += message_;
  return s;
}

}  // namespace derive
