#pragma once
// Comparing two copies of a view's state (audits, docs/operating.md): the
// digests stored with each, and a walk of both states in key order that
// recomputes the first one's digest and collects the keys whose values
// differ.
//
// Each call reads within the snapshots' own read transactions; a snapshot
// is used by one thread at a time.

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <derive/status.hpp>
#include <derive/view_snapshot.hpp>

#include "core/view_digest.hpp"

namespace derive {

// The digest committed with the snapshot's state and offset (the store's
// meta record); nullopt when none was recorded yet (a store written before
// digests existed, not committed to since). Errors: corruption, io_error.
result<std::optional<view_digest>> stored_digest(const view_snapshot& snapshot);

// A key whose value differs between two states (nullopt: absent there).
struct state_difference {
  std::string key;
  std::optional<std::string> actual;
  std::optional<std::string> expected;
};

struct state_comparison {
  // The first differing keys in key order, at most max_differences.
  std::vector<state_difference> differences;
  // True when more keys differ than were collected.
  bool more = false;
  // The digest of `actual`'s state as walked (not as stored).
  view_digest actual_walked;
};

// Walks both states in key order. Errors: corruption, io_error.
result<state_comparison> compare_states(const view_snapshot& actual,
                                        const view_snapshot& expected,
                                        size_t max_differences);

}  // namespace derive
