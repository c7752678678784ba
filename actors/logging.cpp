#include <derive/logging.hpp>

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace derive {
namespace {

constexpr int unset = -1;
std::atomic<int> level_{unset};

int level_from_env() {
  const char* text = std::getenv("DERIVE_LOG_LEVEL");
  return static_cast<int>(text ? parse_log_level(text) : log_level::warn);
}

std::string timestamp() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::time_t secs = system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms));
  return buf;
}

}  // namespace

log_level current_log_level() {
  int v = level_.load(std::memory_order_relaxed);
  if (v == unset) {
    int fresh = level_from_env();
    level_.compare_exchange_strong(v, fresh);
    v = level_.load(std::memory_order_relaxed);
  }
  return static_cast<log_level>(v);
}

void set_log_level(log_level level) { level_.store(static_cast<int>(level)); }

log_level parse_log_level(std::string_view text, log_level fallback) {
  std::string s;
  for (char c : text) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "error") return log_level::error;
  if (s == "warn" || s == "warning") return log_level::warn;
  if (s == "info") return log_level::info;
  if (s == "debug") return log_level::debug;
  if (s == "trace") return log_level::trace;
  return fallback;
}

std::string_view to_string(log_level level) {
  switch (level) {
    case log_level::error: return "ERROR";
    case log_level::warn: return "WARN ";
    case log_level::info: return "INFO ";
    case log_level::debug: return "DEBUG";
    case log_level::trace: return "TRACE";
  }
  return "?";
}

void log_write(log_level level, std::string_view component, std::string_view message) {
  try {
    std::string line = timestamp();
    line += ' ';
    line += to_string(level);
    line += ' ';
    if (!component.empty()) {
      line += '[';
      line += component;
      line += "] ";
    }
    // One event, one line: embedded newlines would break grep and parsers.
    for (char c : message) line += (c == '\n' || c == '\r') ? ' ' : c;
    line += '\n';
    const char* p = line.data();
    size_t left = line.size();
    while (left > 0) {
      ssize_t n = ::write(STDERR_FILENO, p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<size_t>(n);
    }
  } catch (...) {
    // Logging never throws (out of memory: the line is lost).
  }
}

}  // namespace derive
