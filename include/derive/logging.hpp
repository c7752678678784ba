#pragma once
// Derive's own logging (the Debian build of CAF has its logging compiled out).
//
//   derive::log_info("runtime", "started with ", n, " views");
//   DERIVE_LOG_DEBUG("runner", "batch of ", n);   // arguments not evaluated when off
//
// One line per call, written to stderr with a single write() so that lines of
// different threads never interleave:
//   2024-05-01T12:00:00.123Z WARN  [runner] view counts failed at 17: boom
//
// The level comes from the environment variable DERIVE_LOG_LEVEL (error, warn,
// info, debug, trace; read once, at the first call) and defaults to `warn`:
// quiet (warnings and errors only), in tests too. set_log_level() overrides it.
// Thread-safe; never throws.

#include <sstream>
#include <string>
#include <string_view>

namespace derive {

enum class log_level { error = 0, warn = 1, info = 2, debug = 3, trace = 4 };

// The current level; messages above it are dropped.
log_level current_log_level();
void set_log_level(log_level level);
// Parses "error", "warn"/"warning", "info", "debug", "trace" (any case);
// returns `fallback` for anything else.
log_level parse_log_level(std::string_view text, log_level fallback = log_level::warn);
std::string_view to_string(log_level level);

inline bool log_enabled(log_level level) { return level <= current_log_level(); }

// Writes one line (`component` may be empty). No level check: prefer the
// helpers below.
void log_write(log_level level, std::string_view component, std::string_view message);

namespace detail {
template <class... Ts>
void log_format(log_level level, std::string_view component, const Ts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  log_write(level, component, out.str());
}
}  // namespace detail

template <class... Ts>
void log_error(std::string_view component, const Ts&... parts) {
  if (log_enabled(log_level::error)) detail::log_format(log_level::error, component, parts...);
}
template <class... Ts>
void log_warn(std::string_view component, const Ts&... parts) {
  if (log_enabled(log_level::warn)) detail::log_format(log_level::warn, component, parts...);
}
template <class... Ts>
void log_info(std::string_view component, const Ts&... parts) {
  if (log_enabled(log_level::info)) detail::log_format(log_level::info, component, parts...);
}
template <class... Ts>
void log_debug(std::string_view component, const Ts&... parts) {
  if (log_enabled(log_level::debug)) detail::log_format(log_level::debug, component, parts...);
}
template <class... Ts>
void log_trace(std::string_view component, const Ts&... parts) {
  if (log_enabled(log_level::trace)) detail::log_format(log_level::trace, component, parts...);
}

}  // namespace derive

// Macros for hot paths: the arguments are not evaluated when the level is off.
#define DERIVE_LOG_AT(level, component, ...)                                  \
  do {                                                                        \
    if (::derive::log_enabled(level))                                         \
      ::derive::detail::log_format(level, component, __VA_ARGS__);            \
  } while (false)
#define DERIVE_LOG_DEBUG(component, ...) \
  DERIVE_LOG_AT(::derive::log_level::debug, component, __VA_ARGS__)
#define DERIVE_LOG_TRACE(component, ...) \
  DERIVE_LOG_AT(::derive::log_level::trace, component, __VA_ARGS__)
