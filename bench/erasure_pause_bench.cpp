// The pause of forget's online compaction (docs/storage.md, "Erasure"): a log
// of N events (one in five of the forgotten subject) with a view of every
// document and a view derived from it; while forget runs, one thread appends
// one event at a time and records each append's latency. Prints forget's
// duration, the appends made meanwhile and their worst latency (an append
// waits while the log's environment is compacted), and the file sizes. With
// --log, the eraser's own measure of each environment's pause is printed
// too ("compacted ... online; its transactions waited X ms").
//
// Usage: erasure_pause_bench [dir] [--events N]...  (default: 10000 100000)
//   dir defaults to a new /tmp/derive-erasure-pause-*; it is removed at the end.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <derive/logging.hpp>
#include <derive/runtime.hpp>
#include <derive/view.hpp>

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using namespace derive;

namespace {

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

event_input doc(int n, const std::string& subject) {
  event_input e;
  e.type = "doc.put";
  e.key = subject + "-doc-" + std::to_string(n);
  e.subject = subject;
  e.data = "{\"title\":\"" + subject + " title " + std::to_string(n) +
           "\",\"body\":\"" + std::string(200, 'x') + "\"}";
  return e;
}

bool append_one(runtime& rt, append_request req) {
  std::promise<bool> done;
  auto f = done.get_future();
  rt.append(std::move(req), [&done](result<append_outcome> r) { done.set_value(bool(r)); });
  return f.get();
}

uint64_t dir_bytes(const std::string& dir) {
  uint64_t n = 0;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

void run(const std::string& dir, int events) {
  fs::remove_all(dir);
  runtime_options o;
  o.data_dir = dir;
  runtime rt(o);
  rt.add_view(view_def("docs").from_log().apply([](const event& e, view_txn& tx) {
    if (e.type == "doc.put") tx.put(e.key, json::parse(e.data));
  }));
  rt.add_view(view_def("titles").from_view("docs").apply_change(
      [](const upstream_change& c, view_txn& tx) {
        if (c.value) tx.put(c.key, (*c.value)["title"]);
        else tx.erase(c.key);
      }));
  if (!rt.start()) std::exit(2);
  for (int at = 0; at < events; at += 1000) {
    append_request req;
    for (int i = at; i < std::min(events, at + 1000); ++i)
      req.events.push_back(doc(i, i % 5 == 0 ? "alice" : "bob"));
    if (!append_one(rt, std::move(req))) std::exit(2);
  }
  for (int i = 0; i < 6000 && rt.view("titles")->offset < rt.head(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const uint64_t before = dir_bytes(dir);

  std::atomic<bool> appending{true};
  std::vector<double> latencies;
  std::thread appender([&] {
    for (int n = 0; appending.load(); ++n) {
      append_request req;
      req.events.push_back(doc(events + n, "carol"));
      auto t = clock_type::now();
      if (!append_one(rt, std::move(req))) std::exit(2);
      latencies.push_back(ms_since(t));
    }
  });
  std::promise<bool> done;
  auto f = done.get_future();
  auto t = clock_type::now();
  rt.forget("alice", [&done](result<erasure_receipt> r) { done.set_value(bool(r)); });
  const bool ok = f.get();
  const double forget_ms = ms_since(t);
  appending = false;
  appender.join();
  std::sort(latencies.begin(), latencies.end());
  const double worst = latencies.empty() ? 0 : latencies.back();
  const double p50 = latencies.empty() ? 0 : latencies[latencies.size() / 2];
  std::printf("%7d events: forget %s in %.0f ms; %zu appends meanwhile, p50 %.1f ms, worst "
              "%.1f ms; data %.1f MB before, %.1f MB after\n",
              events, ok ? "ok" : "FAILED", forget_ms, latencies.size(), p50, worst,
              before / 1e6, dir_bytes(dir) / 1e6);
  rt.stop();
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  std::vector<int> sizes;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--events" && i + 1 < argc) sizes.push_back(std::atoi(argv[++i]));
    else if (a == "--log") set_log_level(log_level::info);
    else dir = a;
  }
  if (sizes.empty()) sizes = {10000, 100000};
  const bool temp = dir.empty();
  if (temp)
    dir = (fs::temp_directory_path() / ("derive-erasure-pause-" + std::to_string(::getpid())))
              .string();
  for (int n : sizes) run(dir, n);
  if (temp) fs::remove_all(dir);
}
