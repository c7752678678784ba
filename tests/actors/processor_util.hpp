#pragma once
// The processor under test in processor_test and processor_kill_test: for
// every "in" event it emits `fanout` "out" events {"in": N, "i": i} and counts
// its inputs in its state; verify_outputs checks the whole log.

#include <map>
#include <string>

#include <derive/processor.hpp>

#include "tests/actors/test_util.hpp"

namespace derive::testing {

inline constexpr int fanout = 3;

inline processor_def echo_processor(std::string name = "echo", uint32_t version = 1) {
  return processor_def(std::move(name), version)
      .from_log()
      .apply([](const event& e, processor_txn& tx) {
        if (e.type != "in") return;
        tx.put("inputs", tx.get("inputs").value_or(0).get<int64_t>() + 1);
        for (int i = 0; i < fanout; ++i)
          tx.emit(make_event("out", e.key, {{"in", e.offset}, {"i", i}}));
      });
}

// "" when every "in" event has exactly `fanout` outputs (i = 0..fanout-1),
// in order, after it, and no output names an input that is not "in".
inline std::string verify_outputs(runtime& rt) {
  std::map<uint64_t, int> seen;  // input offset -> outputs so far
  std::map<uint64_t, bool> inputs;
  for (uint64_t from = 1;;) {
    auto page = rt.read_log(from, 10'000);
    if (!page) return "read_log: " + page.error().to_string();
    if (page->empty()) break;
    for (auto& e : *page) {
      if (e.type == "in") inputs[e.offset] = true;
      if (e.type != "out") continue;
      auto d = json::parse(e.data);
      uint64_t in = d["in"].get<uint64_t>();
      if (!inputs.count(in)) return "output at " + std::to_string(e.offset) + " for a non-input";
      if (d["i"].get<int>() != seen[in])
        return "output " + std::to_string(d["i"].get<int>()) + " for input " +
               std::to_string(in) + " at " + std::to_string(e.offset) + " is out of order or twice";
      ++seen[in];
    }
    from = page->back().offset + 1;
  }
  for (auto& [in, yes] : inputs) {
    (void)yes;
    if (seen[in] != fanout)
      return "input " + std::to_string(in) + " has " + std::to_string(seen[in]) + " outputs";
  }
  return "";
}

// Waits until the processor has read everything, its own outputs included.
inline status wait_quiet(runtime& rt, const std::string& view) {
  for (;;) {
    uint64_t head = rt.head();
    if (auto s = wait_sync(rt, view, head, std::chrono::seconds(60)); !s) return s;
    if (rt.head() == head) return status::ok();
  }
}

}  // namespace derive::testing
