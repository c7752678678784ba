#pragma once
// Scrubbing the log (docs/operating.md, "Scrub"): reads every record up to
// the head and checks that it decodes (its CRC-32C, format byte and lengths;
// core/event_record.hpp) and that the offsets run 1, 2, ... head without a
// gap. Read-only: short read transactions of `chunk` records each, so a
// scrub never pins old pages for long and appends go on.
//
// Thread-safety: any thread, concurrently with appends.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <derive/status.hpp>

#include "core/log.hpp"

namespace derive {

struct scrub_problem {
  uint64_t offset = 0;  // the record's offset (for a gap: the first missing one)
  std::string error;
};

struct scrub_report {
  uint64_t head = 0;     // the head the scrub ran up to (taken when it started)
  uint64_t checked = 0;  // records read
  std::vector<scrub_problem> problems;  // ascending, at most max_problems
  bool more = false;     // more problems than listed
  bool ok() const { return problems.empty(); }
};

struct scrub_options {
  size_t chunk = 4096;
  size_t max_problems = 100;
  // Called after each chunk with the records checked so far; returning false
  // stops the scrub (it then fails with unavailable).
  std::function<bool(uint64_t checked, uint64_t head)> progress;
};

// Errors: unavailable (stopped by progress), io_error.
result<scrub_report> scrub_log(const event_log& log, const scrub_options& options = {});

}  // namespace derive
