#include "core/log_scrub.hpp"

#include <lmdb.h>

#include "core/event_record.hpp"
#include "core/lmdb_util.hpp"

namespace derive {
namespace {

struct scrub_state {
  scrub_report report;
  uint64_t expected = 1;  // the next offset
  size_t max_problems;

  void problem(uint64_t offset, std::string error) {
    if (report.problems.size() < max_problems)
      report.problems.push_back({offset, std::move(error)});
    else
      report.more = true;
  }
};

// Checks up to `chunk` records from state.expected on, in one read
// transaction; false at the head.
status scrub_chunk(environment& env, size_t chunk, scrub_state& state, bool& more) {
  more = false;
  const uint64_t head = state.report.head;
  txn_guard txn;
  cursor_guard cursor;
  int rc = env.begin_txn(txn, MDB_RDONLY);
  // The log's handle, read in the transaction: an online compaction between
  // two chunks may renumber it.
  auto dbi = env.database("log", MDB_INTEGERKEY);
  if (!dbi) return dbi.error();
  if (rc == MDB_SUCCESS) rc = cursor.open(txn.get(), *dbi);
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "scrubbing the log");
  MDB_val k = uint64_val(state.expected), v{};
  rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_SET_RANGE);
  event decoded;
  for (size_t n = 0; rc == MDB_SUCCESS && n < chunk; ++n) {
    uint64_t offset = 0;
    if (!get_native_uint64(k, offset)) {
      state.problem(state.expected, "a log key of " + std::to_string(k.mv_size) +
                                        " bytes (not an 8-byte offset)");
      ++state.expected;
    } else {
      if (offset > head) break;
      if (offset > state.expected)
        state.problem(state.expected, "offsets " + std::to_string(state.expected) + " to " +
                                          std::to_string(offset - 1) + " are missing");
      if (auto st = decode_event_record(offset, to_view(v), decoded); !st)
        state.problem(offset, st.message());
      state.expected = offset + 1;
    }
    ++state.report.checked;
    rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT);
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return lmdb_status(rc, "scrubbing the log");
  more = rc == MDB_SUCCESS && state.expected <= head;
  return status::ok();
}

}  // namespace

result<scrub_report> scrub_log(const event_log& log, const scrub_options& options) {
  auto& env = log.env();
  if (auto dbi = env.database("log", MDB_INTEGERKEY); !dbi) return dbi.error();  // opened
  scrub_state state;
  state.max_problems = options.max_problems;
  state.report.head = log.head();
  const size_t chunk = options.chunk == 0 ? 1 : options.chunk;
  for (bool more = state.report.head > 0; more;) {
    if (auto st = scrub_chunk(env, chunk, state, more); !st) return st;
    if (options.progress && !options.progress(state.report.checked, state.report.head))
      return status{errc::unavailable, "the scrub was stopped at offset " +
                                           std::to_string(state.expected - 1)};
  }
  if (state.expected <= state.report.head)
    state.problem(state.expected, "offsets " + std::to_string(state.expected) + " to " +
                                      std::to_string(state.report.head) + " are missing");
  return std::move(state.report);
}

}  // namespace derive
