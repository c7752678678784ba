#pragma once
// What the runtime tells about a view: its status, offset and failures.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <derive/audit.hpp>

namespace derive {

// stale: the served version is no longer declared; it answers, frozen at its
// offset, until a declared version is ready (docs/storage.md, "View versions").
enum class view_status { running, catching_up, rebuilding, failed, stopped, stale };
// "running", "catching_up", ... as on the wire.
std::string_view to_string(view_status s);

// The role of one version of a view (docs/storage.md, "View versions").
enum class version_role {
  serving,   // readers, queries, `after=` and subscribers use it
  building,  // declared, built beside the served one; served once ready
  stale,     // no longer declared but still served (frozen at its offset)
  retired,   // dropped: its storage was freed
};
std::string_view to_string(version_role r);  // "serving", ...

// One version of a view and its progress.
struct view_version_info {
  uint32_t version = 1;
  // 0, or the copy of `version` rebuilt beside the served copy of the same
  // version (runtime::rebuild of the served version): 1, 2, ...
  uint32_t generation = 0;
  std::string upstream;  // the upstream version's store label; "" for the log
  version_role role = version_role::building;
  uint64_t offset = 0;
  uint64_t lag = 0;  // its source's head - offset
  double events_per_second = 0;  // inputs applied per second, recently
  std::optional<double> eta_seconds;  // lag / rate, while behind and moving
  view_status status = view_status::stopped;
  bool pinned = false;  // cutover/rollback pinned it: served once ready, kept across restarts
};

struct view_info {
  std::string name;
  uint32_t version = 1;
  uint64_t offset = 0;
  uint64_t lag = 0;  // head - offset
  view_status status = view_status::stopped;
  std::string error;  // when failed: what failed, at which offset
  std::optional<uint64_t> failed_offset;
  // Every version (the one above is the serving one), newest first.
  std::vector<view_version_info> versions;
  // The version an operator pinned (cutover/rollback), kept across restarts
  // while it is declared; nullopt: the newest ready version is served.
  std::optional<uint32_t> pinned;
  std::optional<audit_result> audit;  // the last audit of this view, if any
};

// An event that a view skipped under failure_policy::dead_letter.
struct dead_letter {
  uint64_t offset = 0;
  std::string error;
};

}  // namespace derive
