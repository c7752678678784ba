#pragma once
// What the runtime tells about a view: its status, offset and failures.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <derive/audit.hpp>

namespace derive {

enum class view_status { running, catching_up, rebuilding, failed, stopped };
// "running", "catching_up", ... as on the wire.
std::string_view to_string(view_status s);

struct view_info {
  std::string name;
  uint32_t version = 1;
  uint64_t offset = 0;
  uint64_t lag = 0;  // head - offset
  view_status status = view_status::stopped;
  std::string error;  // when failed: what failed, at which offset
  std::optional<uint64_t> failed_offset;
  std::optional<audit_result> audit;  // the last audit of this view, if any
};

// An event that a view skipped under failure_policy::dead_letter.
struct dead_letter {
  uint64_t offset = 0;
  std::string error;
};

}  // namespace derive
