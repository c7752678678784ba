#pragma once
// Errors as values. Every error code is the protocol's snake_case name, so an
// error that reaches a client keeps a stable code (see docs/protocol.md).

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace derive {

enum class errc {
  ok = 0,
  invalid_json,
  invalid_event,
  invalid_parameter,
  invalid_idempotency_key,
  idempotency_key_reused,
  not_found,
  unknown_view,
  unknown_query,
  not_caught_up,
  payload_too_large,
  storage_full,
  unavailable,
  io_error,    // the operating system or LMDB refused (message says what)
  corruption,  // stored bytes do not decode; the environment is not trusted
  not_supported,  // this deployment cannot do it (message says what would)
};

// The snake_case name of `c`, as used on the wire ("storage_full").
std::string_view to_string(errc c);

// A success or an error code with a message a person can act on.
class status {
 public:
  status() = default;
  status(errc code, std::string message) : code_(code), message_(std::move(message)) {}

  static status ok() { return {}; }

  bool is_ok() const { return code_ == errc::ok; }
  explicit operator bool() const { return is_ok(); }
  errc code() const { return code_; }
  const std::string& message() const { return message_; }
  // "code: message", for logs.
  std::string to_string() const;

 private:
  errc code_ = errc::ok;
  std::string message_;
};

// Either a value or a non-ok status.
template <class T>
class result {
 public:
  result(T value) : v_(std::move(value)) {}
  result(status error) : v_(std::move(error)) { assert(!std::get<status>(v_).is_ok()); }
  result(errc code, std::string message) : result(status{code, std::move(message)}) {}

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // REQUIRES: !has_value()
  const status& error() const { return std::get<status>(v_); }

 private:
  std::variant<T, status> v_;
};

}  // namespace derive
