#pragma once
// Audits and scrubs (docs/operating.md, "Audits"): what the runtime reports
// about them.
//
// An audit rebuilds a private copy of a view (same code, same version) from
// the log up to the live view's offset, in a scratch directory under the data
// directory that it removes afterwards, and compares the two: the digest
// committed with the live state, the digest of the private copy, and both
// states walked in key order. It never changes the served view.
//
// A scrub reads every log record up to the head and checks its checksum and
// that the offsets have no gap.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace derive {

// A key whose value differs between the live view and its rebuild (nullopt:
// the key is absent there; values are JSON text).
struct audit_difference {
  std::string key;
  std::optional<std::string> live;
  std::optional<std::string> expected;
};

struct audit_result {
  std::string view;
  uint32_t version = 1;
  uint64_t offset = 0;          // the offset at which both copies were compared
  std::string digest;           // the live view's committed digest (64 hex digits)
  std::string expected_digest;  // the rebuild's
  bool ok = false;
  // The first differing keys in key order (at most 10); `more_differences`
  // when more keys differ.
  std::vector<audit_difference> differences;
  bool more_differences = false;
  // Why the audit failed when no key differs (the rebuild failed, the stored
  // digest disagrees with the stored state, ...), or why it could not run.
  std::string error;
  uint64_t events = 0;        // inputs the rebuild applied
  uint64_t duration_ms = 0;
  int64_t finished_at_ms = 0;  // milliseconds since the Unix epoch
};

struct scrub_problem_info {
  uint64_t offset = 0;
  std::string error;
};

struct scrub_result {
  bool running = false;
  uint64_t head = 0;     // the head the scrub runs up to
  uint64_t checked = 0;  // records read so far
  bool ok = false;       // finished, every record sound, no gap
  std::vector<scrub_problem_info> problems;  // ascending (at most 100)
  bool more_problems = false;
  std::string error;  // the scrub could not finish
  uint64_t duration_ms = 0;
  int64_t finished_at_ms = 0;  // 0 while running or never run
};

}  // namespace derive
