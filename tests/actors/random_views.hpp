#pragma once
// Three views over random events, one derived from another, and a check that
// each equals a recomputation from scratch at the same offset (used by the
// 100,000-event test and the SIGKILL test).
//
//   counter  (log)     per key: how many events named it; "_total": all events.
//                      Counting proves exactly-once: an event applied twice or
//                      skipped changes a count.
//   latest   (log)     "put" stores data under the key, "bump" adds data.n to
//                      the stored n, "del" erases; "noise" changes nothing.
//   buckets  (latest)  per bucket b: "b:<b>" = {"docs": live documents with
//                      that bucket, "n": the sum of their n}; per document
//                      "d:<key>" = its bucket and n.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <random>
#include <sstream>
#include <thread>

#include "tests/actors/test_util.hpp"

namespace derive::testing {

inline void apply_counter(const event& e, view_txn& tx) {
  tx.put(e.key, tx.get(e.key).value_or(0).get<int64_t>() + 1);
  tx.put("_total", tx.get("_total").value_or(0).get<int64_t>() + 1);
}

inline void apply_latest(const event& e, view_txn& tx) {
  auto data = json::parse(e.data);
  if (e.type == "put") {
    tx.put(e.key, data);
  } else if (e.type == "bump") {
    if (auto doc = tx.get(e.key)) {
      (*doc)["n"] = (*doc)["n"].get<int64_t>() + data["n"].get<int64_t>();
      tx.put(e.key, *doc);
    }
  } else if (e.type == "del") {
    tx.erase(e.key);
  }
}

inline void add_to_bucket(view_txn& tx, const std::string& bucket, int64_t docs, int64_t n) {
  auto key = "b:" + bucket;
  auto b = tx.get(key).value_or(json{{"docs", 0}, {"n", 0}});
  b["docs"] = b["docs"].get<int64_t>() + docs;
  b["n"] = b["n"].get<int64_t>() + n;
  if (b["docs"] == 0) tx.erase(key);
  else tx.put(key, b);
}

inline void apply_buckets(const upstream_change& c, view_txn& tx) {
  auto doc_key = "d:" + c.key;
  if (auto old = tx.get(doc_key)) {
    add_to_bucket(tx, (*old)["b"].get<std::string>(), -1, -(*old)["n"].get<int64_t>());
    tx.erase(doc_key);
  }
  if (c.value) {
    json d = {{"b", (*c.value)["b"]}, {"n", (*c.value)["n"]}};
    add_to_bucket(tx, d["b"].get<std::string>(), 1, d["n"].get<int64_t>());
    tx.put(doc_key, d);
  }
}

inline std::vector<view_def> random_views() {
  return {view_def("counter").from_log().apply(apply_counter),
          view_def("latest").from_log().apply(apply_latest),
          view_def("buckets").from_view("latest").apply_change(apply_buckets)};
}

inline event_input random_event(std::mt19937_64& rng, int keys = 500) {
  static const char* types[] = {"put", "put", "bump", "bump", "del", "noise"};
  std::uniform_int_distribution<int> type(0, 5), key(0, keys - 1), n(-5, 20), bucket(0, 9);
  auto t = types[type(rng)];
  json data = nullptr;
  if (std::string(t) == "put") data = {{"b", "b" + std::to_string(bucket(rng))}, {"n", n(rng)}};
  else if (std::string(t) == "bump") data = {{"n", n(rng)}};
  return make_event(t, "k" + std::to_string(key(rng)), data);
}

// Snapshots every view of `rt`, recomputes all three from the log and
// compares each at its own snapshot offset. Returns "" when all agree,
// otherwise what differs.
inline std::string verify_random_views(runtime& rt) {
  std::map<std::string, view_state> seen;
  for (const char* name : {"counter", "latest", "buckets"}) {
    auto snap = rt.snapshot(name);
    if (!snap) return std::string(name) + ": " + snap.error().to_string();
    seen[name] = {snap->offset(), read_all(*snap)};
  }
  memory_view counter, latest, buckets;
  std::ostringstream problems;
  auto check = [&](uint64_t at) {
    auto compare = [&](const char* name, const memory_view& expected) {
      auto& s = seen[name];
      if (s.offset == at && s.state != expected.state())
        problems << name << " differs from a recomputation at offset " << at << "; ";
    };
    compare("counter", counter);
    compare("latest", latest);
    compare("buckets", buckets);
  };
  uint64_t last = 0;
  for (auto& [name, s] : seen) last = std::max(last, s.offset);
  check(0);
  for (uint64_t from = 1; from <= last;) {
    auto page = rt.read_log(from, 10'000);
    if (!page) return "read_log: " + page.error().to_string();
    if (page->empty()) return "the log ends before offset " + std::to_string(last);
    for (auto& e : *page) {
      if (e.offset > last) break;
      counter.apply(e.offset, [&](view_txn& tx) { apply_counter(e, tx); });
      auto changes = latest.apply(e.offset, [&](view_txn& tx) { apply_latest(e, tx); });
      if (!changes.empty())
        buckets.apply(e.offset, [&](view_txn& tx) {
          for (auto& c : changes) apply_buckets(c, tx);
        });
      check(e.offset);
    }
    from = page->back().offset + 1;
  }
  return problems.str();
}

// The end of a kill test's child: reports `problem` ("ok" when empty) on
// `report_fd` and closes it, then appends random requests (at most
// `max_in_flight` at a time, until the log holds `max_events`) until killed.
[[noreturn]] inline void report_then_append_random(runtime& rt, int report_fd,
                                                   const std::string& problem, uint64_t seed,
                                                   int max_in_flight, uint64_t max_events) {
  std::string report = problem.empty() ? "ok" : problem;
  [[maybe_unused]] auto n = ::write(report_fd, report.data(), report.size());
  ::close(report_fd);
  std::mt19937_64 rng(seed);
  std::atomic<int> in_flight{0};
  for (;;) {
    if (in_flight >= max_in_flight || rt.head() >= max_events) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    append_request r;
    for (int i = 0, k = 1 + static_cast<int>(rng() % 20); i < k; ++i)
      r.events.push_back(random_event(rng));
    ++in_flight;
    rt.append(std::move(r), [&in_flight](result<append_outcome>) { --in_flight; });
  }
}

}  // namespace derive::testing
