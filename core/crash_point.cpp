#include "core/crash_point.hpp"

#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace derive {

void crash_point(const char* name) {
  const char* armed = std::getenv("DERIVE_CRASH_POINT");
  if (armed == nullptr) return;
  const size_t n = std::strlen(name);
  if (std::strncmp(armed, name, n) != 0 || (armed[n] != '\0' && armed[n] != ':')) return;
  static std::atomic<long> passed{0};
  const long at = armed[n] == ':' ? std::strtol(armed + n + 1, nullptr, 10) : 1;
  if (passed.fetch_add(1) + 1 >= at) ::raise(SIGKILL);
}

}  // namespace derive
