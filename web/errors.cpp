#include "web/errors.hpp"

#include "core/json_text.hpp"

namespace derive::web {

unsigned http_status_for(errc code) {
  switch (code) {
    case errc::ok: return 200;
    case errc::invalid_json: return 400;
    case errc::invalid_event: return 400;
    case errc::invalid_parameter: return 400;
    case errc::invalid_idempotency_key: return 400;
    case errc::idempotency_key_reused: return 422;
    case errc::not_found: return 404;
    case errc::unknown_view: return 404;
    case errc::unknown_query: return 404;
    case errc::not_caught_up: return 504;
    case errc::payload_too_large: return 413;
    case errc::storage_full: return 507;
    case errc::unavailable: return 503;
    case errc::io_error: return 500;
    case errc::corruption: return 500;
    case errc::not_supported: return 501;
  }
  return 500;
}

std::string error_body(std::string_view code, std::string_view message) {
  std::string out = "{\"error\":{\"code\":";
  append_json_string(out, code);
  out += ",\"message\":";
  append_json_string(out, message);
  out += "}}";
  return out;
}

std::string error_body(const status& st) {
  return error_body(to_string(st.code()), st.message());
}

ws_close_frame ws_close_frame_for(ws_close why, size_t max_message_bytes) {
  switch (why) {
    case ws_close::shutting_down: return {1001, "the server is shutting down"};
    case ws_close::no_pong: return {1001, "no answer to ping"};
    case ws_close::binary_message: return {1003, "binary messages are not supported"};
    case ws_close::invalid_utf8: return {1007, ""};
    case ws_close::stalled_reader: return {1008, "the client stopped reading"};
    case ws_close::slow_message: return {1008, "a message must arrive whole within the idle timeout"};
    case ws_close::message_too_big:
      return {1009, "messages are limited to " + std::to_string(max_message_bytes) + " bytes"};
    case ws_close::bad_close_code:
      return {1002, "close codes are 1000-1003, 1007-1011 or 3000-4999"};
  }
  return {1011, "internal error"};
}

bool is_valid_client_close_code(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
         (code >= 3000 && code <= 4999);
}

}  // namespace derive::web
