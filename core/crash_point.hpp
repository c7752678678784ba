#pragma once
// A test hook for crash tests: crash_point("name") kills the process with
// SIGKILL when the environment variable DERIVE_CRASH_POINT equals "name"
// (read once, at the first call). Unset, it costs one predictable branch.
// The points are listed in docs/storage.md ("Crash points").

namespace derive {

void crash_point(const char* name);

}  // namespace derive
