#pragma once
// A test hook for crash tests: crash_point("name") kills the process with
// SIGKILL when the environment variable DERIVE_CRASH_POINT is "name" (at the
// first time the point is passed) or "name:n" (at the n-th time, n >= 1).
// Read at every call, so that a forked child may set it; the points are
// passed once per commit, where a getenv costs nothing measurable. The points
// are listed in docs/storage.md ("Crash points").

namespace derive {

void crash_point(const char* name);

}  // namespace derive
