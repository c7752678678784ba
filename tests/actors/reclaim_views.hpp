#pragma once
// The views and options of the space-reclamation tests (reclaim_test,
// reclaim_kill_test): "big" writes `keys` values of 500 bytes on a "fill"
// event and erases all but `kept` of them on a "trim" event, leaving the
// views' environment with many free pages; "small" (from "big") keeps each
// value's size. The reclaimer looks often and waits only briefly.

#include <chrono>
#include <string>
#include <vector>

#include "tests/actors/test_util.hpp"

namespace derive::testing::reclaim {

constexpr int keys = 4000;  // ~2.5 MB of state, of which all but `kept` are erased
constexpr int kept = 100;

inline std::string key_of(int i) { return "k" + std::to_string(100000 + i); }

inline std::vector<view_def> views() {
  return {view_def("big").from_log().apply([](const event& e, view_txn& tx) {
            if (e.type == "fill")
              for (int i = 0; i < keys; ++i) tx.put(key_of(i), std::string(500, 'x'));
            if (e.type == "trim")
              for (int i = kept; i < keys; ++i) tx.erase(key_of(i));
          }),
          view_def("small").from_view("big").apply_change(
              [](const upstream_change& c, view_txn& tx) {
                if (c.value) tx.put(c.key, c.value->get<std::string>().size());
                else tx.erase(c.key);
              })};
}

// Appends "fill", waits until both views applied it, then "trim" and waits
// again. Both in one batch would leave no free pages: a batch writes each
// key's net change only, and a key put then erased has none.
inline bool fill_and_trim(runtime& rt) {
  return append_one(rt, "fill", "a") && wait_sync(rt, "small", rt.head()) &&
         append_one(rt, "trim", "a") && wait_sync(rt, "small", rt.head());
}

inline runtime_options options(const std::string& dir, bool reclaim) {
  using namespace std::chrono_literals;
  runtime_options o;
  o.data_dir = dir;
  o.reclaim.enabled = reclaim;
  o.reclaim.min_free_bytes = 256 << 10;
  o.reclaim.quiet = 300ms;
  o.reclaim.check_every = 50ms;
  return o;
}

}  // namespace derive::testing::reclaim
