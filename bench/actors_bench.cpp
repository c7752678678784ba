// The actor runtime against plain loops measured in the same run.
//
//  1. Group commit: appends/s through the sequencer with many concurrent
//     requesters (one event per request, `requesters` in flight), next to raw
//     LMDB (MDB_APPEND of the same encoded records, same sync setting) at the
//     batch size the sequencer actually formed (events per commit, rounded),
//     and (full durability) next to the physical limit: the same bytes per
//     group written to a preallocated file with one fdatasync per group.
//  2. Latency from runtime::append to the change being published to a
//     subscriber (a view that writes one key per event), p50 and p99, at
//     light load (one request in flight, 1,000 per second for 3 s, after 50
//     not measured) and heavy load (`requesters` in flight). With full
//     durability, next to the raw flush: pwrite of 107 bytes into a
//     preallocated, pre-zeroed file and fdatasync, one at a time, 1,000 per
//     second, before and after the runtime's light run (the goal: the
//     runtime's p99 within 0.5 ms of the raw p99).
//  3. Catch-up: a counting view (per key: how many events) built by the
//     runtime over `events` events already in the log, next to a plain loop
//     that reads the log and commits the same state, changelog and offset
//     through view_store in batches of the same size, without actors.
//  4. Rebuild beside (docs/storage.md, "View versions"): version N+1 of the
//     counting view built beside the served version N, idle (against the
//     plain loop of 3., goal >= 0.7) and while a live view serves appends;
//     the live append -> change p99 with and without that rebuild (goal
//     <= 2x), all in one process.
//  5. Forget (docs/storage.md, "Erasure", "View checkpoints"): a log of
//     `events` events, a counting view (events per type, 10 types) and a
//     keyed view (key -> data, 100,000 keys); the time of runtime::forget of
//     a subject whose events are in the last 1% of the log, then of one
//     whose events are spread throughout, without and with view checkpoints
//     (every 100,000 events, 2 kept), next to a plain loop that recomputes
//     both views from the log through view_store (the work of a rebuild from
//     offset 1, without actors).
//
// Usage: actors_bench [dir] [--events N] [--seconds S] [--requesters R]
//                     [--rounds N] [--only group|latency|catch-up|rebuild|forget]
//   dir defaults to a new /tmp/derive-actors-bench-*; it is removed at the end.
// fsync figures only mean something on a real disk.

#include <lmdb.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <derive/runtime.hpp>
#include <derive/view.hpp>
#include "core/append_check.hpp"
#include "core/log.hpp"
#include "core/view_store.hpp"

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using derive::durability;

namespace {

struct settings {
  std::string dir;
  uint64_t events = 1'000'000;
  double seconds = 3;
  int requesters = 64;
  std::string only;  // "group", "latency", "catch-up", "rebuild" or "forget"; empty: all
  int rounds = 3;
};

double since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// CPU seconds (user + system) of the whole process so far.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

// Events per second of wall clock and of process CPU time.
struct rate {
  double wall = 0;
  double cpu = 0;
  double setup_s = 0;  // of the wall time: opening (the runtime: until start() returned)
};

const char* name_of(durability d) { return d == durability::full ? "full" : "relaxed"; }

derive::event_input bench_event(uint64_t i, uint64_t keys = 1000) {
  derive::event_input e;
  e.type = "bench.put";
  e.key = "key-" + std::to_string(100000 + i % keys);
  e.data = "{\"n\":" + std::to_string(i) + ",\"payload\":\"" + std::string(48, 'x') + "\"}";
  return e;
}

derive::runtime_options options(const std::string& dir, durability mode) {
  derive::runtime_options o;
  o.data_dir = dir;
  o.storage.mode = mode;
  return o;
}

// Keeps up to `limit` appends in flight; `issue(i)` starts append i.
class in_flight_limiter {
 public:
  explicit in_flight_limiter(int limit) : limit_(limit) {}
  void acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return n_ < limit_; });
    ++n_;
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    --n_;
    cv_.notify_all();
  }
  void drain() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return n_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int limit_;
  int n_ = 0;
};

// --- 1. group commit -------------------------------------------------------

struct append_figures {
  double events_per_s = 0;
  double events_per_commit = 0;
};

append_figures sequencer_appends(const settings& s, durability mode) {
  auto dir = s.dir + "/seq-" + name_of(mode);
  derive::runtime rt(options(dir, mode));
  if (auto st = rt.start(); !st) {
    std::fprintf(stderr, "start: %s\n", st.to_string().c_str());
    std::exit(1);
  }
  in_flight_limiter limiter(s.requesters);
  auto t0 = clock_type::now();
  uint64_t i = 0;
  while (since(t0) < s.seconds) {
    limiter.acquire();
    derive::append_request r;
    r.events.push_back(bench_event(i++));
    rt.append(std::move(r), [&](derive::result<derive::append_outcome>) { limiter.release(); });
  }
  limiter.drain();
  double elapsed = since(t0);
  auto m = rt.metrics();
  rt.stop();
  fs::remove_all(dir);
  return {static_cast<double>(m.appended_events) / elapsed,
          static_cast<double>(m.appended_events) / static_cast<double>(std::max<uint64_t>(1, m.append_commits))};
}

void check(int rc, const char* what) {
  if (rc != MDB_SUCCESS) {
    std::fprintf(stderr, "%s: %s\n", what, mdb_strerror(rc));
    std::exit(1);
  }
}

double raw_lmdb_appends(const settings& s, durability mode, size_t batch) {
  auto dir = s.dir + "/raw-" + name_of(mode);
  fs::create_directories(dir);
  MDB_env* env = nullptr;
  check(mdb_env_create(&env), "mdb_env_create");
  check(mdb_env_set_mapsize(env, uint64_t{64} << 30), "mdb_env_set_mapsize");
  check(mdb_env_set_maxdbs(env, 16), "mdb_env_set_maxdbs");
  unsigned flags = MDB_NOTLS | (mode == durability::relaxed ? MDB_NOSYNC : 0);
  check(mdb_env_open(env, dir.c_str(), flags, 0644), "mdb_env_open");
  MDB_txn* txn = nullptr;
  MDB_dbi dbi;
  check(mdb_txn_begin(env, nullptr, 0, &txn), "mdb_txn_begin");
  check(mdb_dbi_open(txn, "log", MDB_CREATE | MDB_INTEGERKEY, &dbi), "mdb_dbi_open");
  check(mdb_txn_commit(txn), "mdb_txn_commit");
  std::vector<std::string> records(batch);
  for (size_t i = 0; i < batch; ++i) derive::encode_event_record(bench_event(i), 1'700'000'000'000, records[i]);
  uint64_t next = 1;
  auto t0 = clock_type::now();
  while (since(t0) < s.seconds) {
    check(mdb_txn_begin(env, nullptr, 0, &txn), "mdb_txn_begin");
    MDB_cursor* cur = nullptr;
    check(mdb_cursor_open(txn, dbi, &cur), "mdb_cursor_open");
    for (auto& r : records) {
      size_t key = next++;
      MDB_val k{sizeof key, &key}, v{r.size(), r.data()};
      check(mdb_cursor_put(cur, &k, &v, MDB_APPEND), "mdb_cursor_put");
    }
    mdb_cursor_close(cur);
    check(mdb_txn_commit(txn), "mdb_txn_commit");
  }
  double rate = static_cast<double>(next - 1) / since(t0);
  mdb_env_close(env);
  fs::remove_all(dir);
  return rate;
}

// event_log::append alone (no actors), groups of `batch` one-event requests.
double log_appends(const settings& s, durability mode, size_t batch) {
  auto dir = s.dir + "/log-" + name_of(mode);
  derive::environment_options o;
  o.mode = mode;
  double events_per_s = 0;
  {
    auto env = derive::environment::open(dir, o).value();
    auto log = derive::event_log::open(*env).value();
    uint64_t i = 0;
    auto t0 = clock_type::now();
    while (since(t0) < s.seconds) {
      std::vector<derive::checked_append> group;
      for (size_t r = 0; r < batch; ++r)
        group.push_back(derive::checked_append_access::make({bench_event(i++)}, "", ""));
      log->append(group);
    }
    events_per_s = static_cast<double>(i) / since(t0);
  }
  fs::remove_all(dir);
  return events_per_s;
}

// The physical limit: the bytes of `batch` encoded events written with one
// pwrite into a preallocated, pre-zeroed file (wrapping around 16 MiB: no
// size change to journal) and one fdatasync per group.
double file_appends(const settings& s, size_t batch) {
  auto path = s.dir + "/file-flush";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    std::perror("open");
    std::exit(1);
  }
  const size_t region = size_t{16} << 20;
  std::string zeros(region, '\0');
  if (::pwrite(fd, zeros.data(), zeros.size(), 0) != ssize_t(zeros.size()) || ::fsync(fd) != 0) {
    std::perror("prepare");
    std::exit(1);
  }
  std::string bytes;
  for (size_t i = 0; i < batch; ++i) {
    std::string r;
    derive::encode_event_record(bench_event(i), 1'700'000'000'000, r);
    bytes += r;
  }
  uint64_t events = 0;
  size_t at = 0;
  auto t0 = clock_type::now();
  while (since(t0) < s.seconds) {
    if (at + bytes.size() > region) at = 0;
    if (::pwrite(fd, bytes.data(), bytes.size(), off_t(at)) != ssize_t(bytes.size()) ||
        ::fdatasync(fd) != 0) {
      std::perror("pwrite/fdatasync");
      std::exit(1);
    }
    at += bytes.size();
    events += batch;
  }
  double rate = static_cast<double>(events) / since(t0);
  ::close(fd);
  fs::remove(path);
  return rate;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Each measurement `rounds` times, alternating (the disk's fsync time drifts
// on shared machines); medians are printed.
void bench_group_commit(const settings& s) {
  std::printf("\n## 1. group commit: %d requesters, 1 event per request, %.0f s per run, "
              "median of %d alternating rounds\n\n",
              s.requesters, s.seconds, s.rounds);
  std::printf("| durability | sequencer events/s | events per commit | raw LMDB events/s at that batch | ratio to raw | event_log::append alone at that batch | ratio to event_log | file: one fdatasync per group, events/s | ratio to file |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (auto mode : {durability::full, durability::relaxed}) {
    std::vector<double> seq_rate, per_commit, raw_rate, log_rate, to_raw, to_log, file_rate,
        to_file;
    for (int round = 0; round < s.rounds; ++round) {
      auto seq = sequencer_appends(s, mode);
      auto batch = static_cast<size_t>(std::max(1.0, seq.events_per_commit + 0.5));
      auto raw = raw_lmdb_appends(s, mode, batch);
      auto log = log_appends(s, mode, batch);
      seq_rate.push_back(seq.events_per_s);
      per_commit.push_back(seq.events_per_commit);
      raw_rate.push_back(raw);
      log_rate.push_back(log);
      to_raw.push_back(seq.events_per_s / raw);
      to_log.push_back(seq.events_per_s / log);
      if (mode == durability::full) {
        auto file = file_appends(s, batch);
        file_rate.push_back(file);
        to_file.push_back(seq.events_per_s / file);
      }
    }
    auto batch = static_cast<size_t>(std::max(1.0, median(per_commit) + 0.5));
    std::string file_cols = "– | –";  // relaxed: no flush to compare with
    if (!file_rate.empty()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.0f | %.2f", median(file_rate), median(to_file));
      file_cols = buf;
    }
    std::printf("| %s | %.0f | %.1f | %.0f (batch ~%zu) | %.2f | %.0f | %.2f | %s |\n",
                name_of(mode), median(seq_rate), median(per_commit), median(raw_rate), batch,
                median(to_raw), median(log_rate), median(to_log), file_cols.c_str());
    std::fflush(stdout);
  }
}

// --- 2. latency append -> published ----------------------------------------

class timing_sink : public derive::change_sink {
 public:
  explicit timing_sink(size_t n) : received_(n) {}
  void on_changes(uint64_t, std::vector<derive::change_ptr> items) override {
    auto now = clock_type::now();
    for (auto& item : items) {
      auto i = std::stoull(item->key.substr(1));
      if (i < received_.size()) received_[i] = now;
    }
  }
  void on_lost(uint64_t) override { lost_ = true; }
  std::vector<clock_type::time_point> received_;
  std::atomic<bool> lost_{false};
};

struct percentiles {
  double p50_ms = 0, p99_ms = 0;
};

// Appends `warmup` + n events, `in_flight` at a time, and at most `rate` per
// second when rate > 0 (append i is sent at start + i / rate, or as soon as
// one may be in flight); the first `warmup` are not measured (the first
// commits of a new environment grow its file and fault its pages in).
percentiles latency_run(const settings& s, durability mode, int in_flight, size_t n,
                        double rate = 0, size_t warmup = 0) {
  auto dir = s.dir + "/latency-" + name_of(mode) + "-" + std::to_string(in_flight);
  derive::runtime rt(options(dir, mode));
  rt.add_view(derive::view_def("latest").from_log().apply(
      [](const derive::event& e, derive::view_txn& tx) { tx.put(e.key, e.offset); }));
  if (auto st = rt.start(); !st) {
    std::fprintf(stderr, "start: %s\n", st.to_string().c_str());
    std::exit(1);
  }
  const size_t total = warmup + n;
  auto sink = std::make_shared<timing_sink>(total);
  derive::subscription_filter f;
  f.view = "latest";
  rt.subscribe(f, sink);
  std::vector<clock_type::time_point> sent(total);
  in_flight_limiter limiter(in_flight);
  const auto start = clock_type::now();
  for (size_t i = 0; i < total; ++i) {
    if (rate > 0)
      std::this_thread::sleep_until(
          start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(i / rate)));
    limiter.acquire();
    derive::append_request r;
    auto e = bench_event(i);
    e.key = "e" + std::to_string(i);
    r.events.push_back(std::move(e));
    sent[i] = clock_type::now();
    rt.append(std::move(r), [&](derive::result<derive::append_outcome>) { limiter.release(); });
  }
  limiter.drain();
  std::promise<derive::status> caught_up;
  rt.wait_for("latest", rt.head(), std::chrono::seconds(60),
              [&](derive::status st) { caught_up.set_value(st); });
  caught_up.get_future().wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the hub's last batch
  std::vector<double> ms;
  for (size_t i = warmup; i < total; ++i)
    if (sink->received_[i] != clock_type::time_point{})
      ms.push_back(std::chrono::duration<double, std::milli>(sink->received_[i] - sent[i]).count());
  rt.stop();
  fs::remove_all(dir);
  if (ms.size() != n) std::fprintf(stderr, "warning: %zu of %zu changes seen\n", ms.size(), n);
  std::sort(ms.begin(), ms.end());
  if (ms.empty()) return {};
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]};
}

// The flush alone: n writes of an event's 107 bytes, each followed by
// fdatasync, into a preallocated and pre-zeroed file (no size change to
// journal), one at a time, at most `rate` per second (0: back to back); the
// time of each write + flush.
std::vector<double> raw_flush_ms(const settings& s, size_t n, double rate = 0) {
  auto path = s.dir + "/raw-flush";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    std::perror("open");
    std::exit(1);
  }
  std::string record(107, 'r');
  std::string zeros(n * record.size() + 4096, '\0');
  if (::pwrite(fd, zeros.data(), zeros.size(), 0) != ssize_t(zeros.size()) || ::fsync(fd) != 0) {
    std::perror("prepare");
    std::exit(1);
  }
  std::vector<double> ms;
  const auto start = clock_type::now();
  for (size_t i = 0; i < n; ++i) {
    if (rate > 0)
      std::this_thread::sleep_until(
          start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(i / rate)));
    auto t0 = clock_type::now();
    if (::pwrite(fd, record.data(), record.size(), off_t(i * record.size())) !=
            ssize_t(record.size()) ||
        ::fdatasync(fd) != 0) {
      std::perror("pwrite/fdatasync");
      std::exit(1);
    }
    ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
  }
  ::close(fd);
  fs::remove(path);
  return ms;
}

percentiles percentiles_of(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  if (ms.empty()) return {};
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]};
}

void bench_latency(const settings& s) {
  std::printf("\n## 2. latency from append to published change (one view, one subscriber)\n\n");
  std::printf("| durability | load | appends | p50 ms | p99 ms |\n|---|---|---|---|---|\n");
  // Light load: 1,000 appends/s, one at a time (the measure), for 3 s
  // (the journal checkpoints every 1,024 appends: three of them), after 50
  // not measured.
  constexpr double light_rate = 1000;
  constexpr size_t light_n = 3000, warmup = 50;
  for (auto mode : {durability::full, durability::relaxed}) {
    if (mode == durability::full) {
      // Raw flush, runtime, raw flush: the disk's flush time drifts.
      auto raw = raw_flush_ms(s, light_n / 2, light_rate);
      auto light = latency_run(s, mode, 1, light_n, light_rate, warmup);
      auto raw2 = raw_flush_ms(s, light_n / 2, light_rate);
      raw.insert(raw.end(), raw2.begin(), raw2.end());
      auto r = percentiles_of(std::move(raw));
      std::printf("| raw | pwrite + fdatasync (1 at a time, 1,000/s) | %zu | %.2f | %.2f |\n",
                  light_n, r.p50_ms, r.p99_ms);
      std::printf("| %s | light (1 in flight, 1,000/s) | %zu | %.2f | %.2f |\n", name_of(mode),
                  light_n, light.p50_ms, light.p99_ms);
      std::printf("| | goal: light p99 <= raw p99 + 0.5 ms | | | %.2f (%s) |\n",
                  r.p99_ms + 0.5, light.p99_ms <= r.p99_ms + 0.5 ? "met" : "not met");
    } else {
      auto light = latency_run(s, mode, 1, light_n, light_rate, warmup);
      std::printf("| %s | light (1 in flight, 1,000/s) | %zu | %.2f | %.2f |\n", name_of(mode),
                  light_n, light.p50_ms, light.p99_ms);
    }
    size_t heavy_n = mode == durability::full ? 20000 : 100000;
    auto heavy = latency_run(s, mode, s.requesters, heavy_n);
    std::printf("| %s | heavy (%d in flight) | %zu | %.2f | %.2f |\n", name_of(mode),
                s.requesters, heavy_n, heavy.p50_ms, heavy.p99_ms);
    std::fflush(stdout);
  }
}

// --- 3. catch-up ------------------------------------------------------------

void fill_log(const std::string& dir, uint64_t n) {
  derive::environment_options o;
  o.mode = durability::relaxed;
  auto env = derive::environment::open(dir, o).value();
  auto log = derive::event_log::open(*env).value();
  for (uint64_t i = 0; i < n;) {
    std::vector<derive::event_input> events;
    for (size_t k = 0; k < derive::max_events_per_append && i < n; ++k) events.push_back(bench_event(i++));
    if (auto out = log->append(derive::checked_append_access::make(std::move(events), "", ""));
        !out) {
      std::fprintf(stderr, "fill: %s\n", out.error().to_string().c_str());
      std::exit(1);
    }
  }
}

// Reads the log and commits per-key counts (state, changelog, offset) through
// view_store, `batch` events per commit, with a plain hash map as cache.
rate plain_catch_up(const std::string& dir, uint32_t version, uint64_t batch) {
  auto t0 = clock_type::now();
  auto c0 = cpu_seconds();
  auto env = derive::environment::open(dir).value();
  auto log = derive::event_log::open(*env).value();
  // The store's commits do not flush, as the runtime's views' do not.
  auto views = derive::environment::open_recomputable(dir + "/plain-views", {},
                                                      "/proc/sys/kernel/random/boot_id",
                                                      false, nullptr)
                   .value();
  auto store = derive::view_store::open(*views, "plain", version).value();
  const double opened = since(t0);
  uint64_t head = log->head();
  std::unordered_map<std::string, int64_t> counts;
  uint64_t offset = 0;
  std::vector<derive::event> events;  // reused by every page, as the runner does
  while (offset < head) {
    if (auto st = log->read(offset + 1, batch, events); !st) {
      std::fprintf(stderr, "read: %s\n", st.to_string().c_str());
      std::exit(1);
    }
    std::vector<derive::offset_changes> changes;
    changes.reserve(events.size());
    for (auto& e : events) {
      auto it = counts.find(e.key);
      if (it == counts.end()) {
        auto snap = store->snapshot().value();
        auto v = snap.get(e.key).value();
        it = counts.emplace(e.key, v ? std::stoll(*v) : 0).first;
      }
      ++it->second;
      changes.push_back({e.offset, {{e.key, std::to_string(it->second)}}});
    }
    offset = events.back().offset;
    if (auto st = store->commit(changes, offset); !st) {
      std::fprintf(stderr, "commit: %s\n", st.to_string().c_str());
      std::exit(1);
    }
  }
  auto n = static_cast<double>(head);
  return {n / since(t0), n / (cpu_seconds() - c0), opened};
}

rate runtime_catch_up(const std::string& dir, uint32_t version) {
  auto t0 = clock_type::now();
  auto c0 = cpu_seconds();
  derive::runtime rt(options(dir, durability::full));
  // A new view per run: a new version of one view would be served only once
  // ready, and wait_for would answer for the version served before.
  rt.add_view(derive::view_def("counts-" + std::to_string(version)).from_log().apply(
      [](const derive::event& e, derive::view_txn& tx) {
        tx.put(e.key, tx.get(e.key).value_or(0).get<int64_t>() + 1);
      }));
  if (auto st = rt.start(); !st) {
    std::fprintf(stderr, "start: %s\n", st.to_string().c_str());
    std::exit(1);
  }
  const double started = since(t0);
  std::promise<derive::status> done;
  rt.wait_for("counts-" + std::to_string(version), rt.head(), std::chrono::minutes(10),
              [&](derive::status st) { done.set_value(st); });
  auto st = done.get_future().get();
  auto n = static_cast<double>(rt.head());
  rate out{n / since(t0), n / (cpu_seconds() - c0), started};
  if (!st) std::fprintf(stderr, "catch-up: %s\n", st.to_string().c_str());
  rt.stop();
  return out;
}

void bench_catch_up(const settings& s) {
  auto dir = s.dir + "/catch-up";
  std::printf("\n## 3. catch-up of a counting view over %llu events (1000 keys)\n\n",
              static_cast<unsigned long long>(s.events));
  fill_log(dir, s.events);
  uint64_t batch = derive::runtime_options{}.catch_up_batch;
  std::printf("| run | runtime events/s | plain loop events/s | ratio (wall) | runtime events per CPU-s | plain events per CPU-s | ratio (events per CPU-second) | opening: runtime / plain ms |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (uint32_t run = 1; run <= 3; ++run) {  // alternating, each on a fresh view version
    auto plain = plain_catch_up(dir, run, batch);
    auto actors = runtime_catch_up(dir, run);
    std::printf("| %u | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f | %.1f / %.1f |\n", run,
                actors.wall, plain.wall, actors.wall / plain.wall, actors.cpu, plain.cpu,
                actors.cpu / plain.cpu, actors.setup_s * 1e3, plain.setup_s * 1e3);
    std::fflush(stdout);
  }
  fs::remove_all(dir);
}

// --- 4. a rebuild beside live traffic ----------------------------------------

derive::view_def counting(uint32_t version) {
  return derive::view_def("counts", version).from_log().apply(
      [](const derive::event& e, derive::view_txn& tx) {
        tx.put(e.key, tx.get(e.key).value_or(0).get<int64_t>() + 1);
      });
}

// The live view: one key per live append ("e<i>"); the log's filler is skipped.
derive::view_def live_view() {
  return derive::view_def("live").from_log().apply(
      [](const derive::event& e, derive::view_txn& tx) {
        if (!e.key.empty() && e.key[0] == 'e') tx.put(e.key, e.offset);
      });
}

// A runtime on `dir` declaring `versions` of counts and the live view.
std::unique_ptr<derive::runtime> start_versions(const std::string& dir,
                                                const std::vector<uint32_t>& versions) {
  auto rt = std::make_unique<derive::runtime>(options(dir, durability::full));
  for (auto v : versions) rt->add_view(counting(v));
  rt->add_view(live_view());
  if (auto st = rt->start(); !st) {
    std::fprintf(stderr, "start: %s\n", st.to_string().c_str());
    std::exit(1);
  }
  return rt;
}

void wait_served(derive::runtime& rt, const std::string& view) {
  std::promise<derive::status> done;
  rt.wait_for(view, rt.head(), std::chrono::minutes(10),
              [&](derive::status st) { done.set_value(st); });
  if (auto st = done.get_future().get(); !st) {
    std::fprintf(stderr, "wait: %s\n", st.to_string().c_str());
    std::exit(1);
  }
}

// Appends up to `n` events one at a time (keys "e<first + i>"), each when
// the previous one is durable, until `enough()`; returns the p99 of append ->
// change on the live view and sets `n` to the count appended.
double live_p99(derive::runtime& rt, size_t first, size_t& n,
                const std::function<bool()>& enough = [] { return false; }) {
  auto sink = std::make_shared<timing_sink>(first + n);
  derive::subscription_filter f;
  f.view = "live";
  f.prefix = "e";
  auto id = rt.subscribe(f, sink).value();
  std::vector<clock_type::time_point> sent(first + n);
  in_flight_limiter limiter(1);
  for (size_t i = first; i < first + n; ++i) {
    if (enough()) n = i - first;
    if (i == first + n) break;
    limiter.acquire();
    derive::append_request r;
    auto e = bench_event(i);
    e.key = "e" + std::to_string(i);
    r.events.push_back(std::move(e));
    sent[i] = clock_type::now();
    rt.append(std::move(r), [&](derive::result<derive::append_outcome>) { limiter.release(); });
  }
  limiter.drain();
  wait_served(rt, "live");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the hub's last batch
  rt.unsubscribe(id);
  std::vector<double> ms;
  for (size_t i = first; i < first + n; ++i)
    if (sink->received_[i] != clock_type::time_point{})
      ms.push_back(std::chrono::duration<double, std::milli>(sink->received_[i] - sent[i]).count());
  if (ms.size() != n) std::fprintf(stderr, "warning: %zu of %zu changes seen\n", ms.size(), n);
  return percentiles_of(std::move(ms)).p99_ms;
}

// The version of counts served, and the offset of version `v`.
uint32_t served_version(derive::runtime& rt) { return rt.view("counts").value().version; }
uint64_t version_offset(derive::runtime& rt, uint32_t v) {
  auto info = rt.view("counts").value();  // (not in the range-for: it would dangle)
  for (const auto& ver : info.versions)
    if (ver.version == v) return ver.offset;
  return 0;
}

// Waits until version `v` of counts is served; its events per second since t0
// (it starts from offset 0).
double rebuild_rate(derive::runtime& rt, uint32_t v, clock_type::time_point t0) {
  while (served_version(rt) != v) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return static_cast<double>(version_offset(rt, v)) / since(t0);
}

// A log of `events` events in `dir`, with version 1 of counts served.
void fill_served(const std::string& dir, uint64_t events) {
  fill_log(dir, events);
  auto rt = start_versions(dir, {1});
  wait_served(*rt, "counts");
}

void bench_rebuild(const settings& s) {
  auto dir = s.dir + "/rebuild";
  std::printf("\n## 4. a rebuild beside the served version over %llu events (1000 keys)\n\n",
              static_cast<unsigned long long>(s.events));
  // Idle: versions 2, 3, 4 each built beside the ones before with nothing else
  // running, alternating with the plain loop (this machine's rate swings
  // between runs; a pair's ratio is read in the same seconds). The earlier
  // versions stay declared, so none is retired meanwhile.
  fill_served(dir + "/idle", s.events);
  std::vector<double> plain_rates, idle_rates, idle_ratios;
  constexpr uint32_t idle_rounds = 3;
  std::vector<uint32_t> declared{1};
  for (uint32_t v = 2; v < 2 + idle_rounds; ++v) {
    auto plain = plain_catch_up(dir + "/idle", 100 + v, derive::runtime_options{}.catch_up_batch);
    declared.push_back(v);
    auto t0 = clock_type::now();
    auto rt = start_versions(dir + "/idle", declared);
    plain_rates.push_back(plain.wall);
    idle_rates.push_back(rebuild_rate(*rt, v, t0));
    idle_ratios.push_back(idle_rates.back() / plain.wall);
  }
  fs::remove_all(dir + "/idle");
  // The live p99 on a log of its own: first with version 2 served and
  // version 1 caught up beside it, no rebuild running ...
  fill_served(dir, s.events);
  auto rt = start_versions(dir, {1, 2});
  wait_served(*rt, "counts");
  while (served_version(*rt) != 2) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  size_t n = 1000;
  double p99_quiet = live_p99(*rt, 0, n);
  rt.reset();
  // ... then while version 3 builds beside version 2 (appends, one at a
  // time, until version 3 is served).
  auto t0 = clock_type::now();
  rt = start_versions(dir, {2, 3});
  size_t during = n;  // appends while version 3 builds
  double p99_rebuild = live_p99(*rt, n, during, [&] { return served_version(*rt) == 3; });
  double live_rate = rebuild_rate(*rt, 3, t0);
  rt.reset();
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  auto list = [](const std::vector<double>& v, const char* format) {
    std::string out;
    char buf[32];
    for (double x : v) {
      std::snprintf(buf, sizeof buf, format, x);
      out += (out.empty() ? "" : ", ") + std::string(buf);
    }
    return out;
  };
  const double plain_median = median(plain_rates);
  std::printf("| measure | value | goal |\n|---|---|---|\n");
  std::printf("| plain loop (3.), events/s, %u runs (median) | %s (%.0f) | |\n", idle_rounds,
              list(plain_rates, "%.0f").c_str(), plain_median);
  std::printf("| rebuild beside, idle: events/s, each after its plain loop (median) | %s (%.0f) "
              "| |\n", list(idle_rates, "%.0f").c_str(), median(idle_rates));
  std::printf("| rebuild beside, idle, ÷ the plain loop just before it (median) | %s (%.2f) | "
              ">= 0.7 |\n", list(idle_ratios, "%.2f").c_str(), median(idle_ratios));
  rate plain{plain_median, 0, 0};
  std::printf("| rebuild beside live appends: events/s | %.0f (%.2f of the plain loop) | |\n",
              live_rate, live_rate / plain.wall);
  std::printf("| live append -> change p99, no rebuild (%zu appends, 1 in flight, full "
              "durability) | %.2f ms | |\n", n, p99_quiet);
  std::printf("| live append -> change p99, during the rebuild (%zu appends) | %.2f ms (%.2fx) "
              "| <= 2x |\n", during, p99_rebuild, p99_quiet > 0 ? p99_rebuild / p99_quiet : 0.0);
  std::fflush(stdout);
  fs::remove_all(dir);
}

// --- 5. forget ----------------------------------------------------------------

constexpr uint64_t forget_keys = 100'000;
constexpr uint64_t checkpoint_every = 100'000;

// Event i of the forget benchmark: subject "late" on every 10th event of the
// last 1%, "spread" on every 1000th event, else "other-<i % 1000>".
derive::event_input forget_event(uint64_t i, uint64_t n) {
  derive::event_input e;
  e.type = "bench.t" + std::to_string(i % 10);
  e.key = "key-" + std::to_string(100000 + i % forget_keys);
  e.data = "{\"n\":" + std::to_string(i) + ",\"payload\":\"" + std::string(48, 'x') + "\"}";
  if (i >= n - n / 100 && i % 10 == 3) e.subject = "late";
  else if (i % 1000 == 7) e.subject = "spread";
  else e.subject = "other-" + std::to_string(i % 1000);
  return e;
}

void fill_forget_log(const std::string& dir, uint64_t n) {
  derive::environment_options o;
  o.mode = durability::relaxed;
  auto env = derive::environment::open(dir, o).value();
  auto log = derive::event_log::open(*env).value();
  for (uint64_t i = 0; i < n;) {
    std::vector<derive::event_input> events;
    for (size_t k = 0; k < derive::max_events_per_append && i < n; ++k)
      events.push_back(forget_event(i++, n));
    if (auto out = log->append(derive::checked_append_access::make(std::move(events), "", ""));
        !out) {
      std::fprintf(stderr, "fill: %s\n", out.error().to_string().c_str());
      std::exit(1);
    }
  }
}

std::vector<derive::view_def> forget_views() {
  return {derive::view_def("per-type").from_log().apply(
              [](const derive::event& e, derive::view_txn& tx) {
                tx.put(e.type, tx.get(e.type).value_or(0).get<int64_t>() + 1);
              }),
          derive::view_def("by-key").from_log().apply(
              [](const derive::event& e, derive::view_txn& tx) {
                tx.put(e.key, derive::json::parse(e.data));
              })};
}

// Seconds for the plain loop: both views recomputed from the log, 10,000
// events per commit, through view_store with hash maps as caches.
double plain_recompute(const std::string& dir) {
  auto t0 = clock_type::now();
  auto env = derive::environment::open(dir).value();
  auto log = derive::event_log::open(*env).value();
  fs::remove_all(dir + "/plain-views");
  auto views = derive::environment::open_recomputable(dir + "/plain-views", {},
                                                      "/proc/sys/kernel/random/boot_id",
                                                      false, nullptr)
                   .value();
  auto per_type = derive::view_store::open(*views, "per-type", 1).value();
  auto by_key = derive::view_store::open(*views, "by-key", 1).value();
  std::unordered_map<std::string, int64_t> counts;
  const uint64_t head = log->head();
  uint64_t offset = 0;
  std::vector<derive::event> events;
  while (offset < head) {
    if (auto st = log->read(offset + 1, 10'000, events); !st) std::exit(1);
    std::vector<derive::offset_changes> typed, keyed;
    for (auto& e : events) {
      if (e.redacted) continue;
      int64_t n = ++counts[e.type];
      typed.push_back({e.offset, {{e.type, std::to_string(n)}}});
      keyed.push_back({e.offset, {{e.key, derive::json::parse(e.data).dump()}}});
    }
    offset = events.back().offset;
    if (!per_type->commit(typed, offset) || !by_key->commit(keyed, offset)) std::exit(1);
  }
  return since(t0);
}

// Seconds runtime::forget(subject) takes to answer.
double timed_forget(derive::runtime& rt, const std::string& subject, size_t& redacted) {
  auto t0 = clock_type::now();
  std::promise<derive::result<derive::erasure_receipt>> done;
  rt.forget(subject, [&](derive::result<derive::erasure_receipt> r) { done.set_value(r); });
  auto r = done.get_future().get();
  double sec = since(t0);
  if (!r) {
    std::fprintf(stderr, "forget: %s\n", r.error().to_string().c_str());
    std::exit(1);
  }
  redacted = r->offsets.size();
  return sec;
}

void bench_forget(const settings& s) {
  std::printf("\n## 5. forget a subject in a log of %llu events (per-type counting view, "
              "keyed view of 100,000 keys)\n\n",
              static_cast<unsigned long long>(s.events));
  std::printf("| checkpoints | catch-up s | forget `late` (last 1%%) s | x plain loop | "
              "forget `spread` (throughout) s | x plain loop | plain loop s |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (uint64_t every : {uint64_t{0}, checkpoint_every}) {
    auto dir = s.dir + "/forget";
    fs::remove_all(dir);
    fill_forget_log(dir, s.events);
    auto o = options(dir, durability::relaxed);
    o.view_checkpoint_every = every;
    o.view_checkpoints_kept = 2;
    auto t0 = clock_type::now();
    double catch_up = 0, late = 0, spread = 0;
    size_t late_n = 0, spread_n = 0;
    {
      derive::runtime rt(o);
      for (auto& v : forget_views()) rt.add_view(v);
      if (auto st = rt.start(); !st) std::exit(1);
      for (const char* view : {"per-type", "by-key"}) {
        std::promise<derive::status> done;
        rt.wait_for(view, rt.head(), std::chrono::minutes(30),
                    [&](derive::status st) { done.set_value(st); });
        if (!done.get_future().get()) std::exit(1);
      }
      catch_up = since(t0);
      late = timed_forget(rt, "late", late_n);
      spread = timed_forget(rt, "spread", spread_n);
      rt.stop();
    }
    double plain = plain_recompute(dir);
    std::printf("| %s | %.1f | %.2f (%zu events) | %.2f | %.2f (%zu events) | %.2f | %.2f |\n",
                every ? "every 100,000 events, 2 kept" : "off", catch_up, late, late_n,
                late / plain, spread, spread_n, spread / plain, plain);
    std::fflush(stdout);
    fs::remove_all(dir);
  }
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--events") s.events = std::stoull(next());
    else if (a == "--seconds") s.seconds = std::stod(next());
    else if (a == "--requesters") s.requesters = std::stoi(next());
    else if (a == "--only") s.only = next();
    else if (a == "--rounds") s.rounds = std::stoi(next());
    else if (a.rfind("--", 0) != 0) s.dir = a;
  }
  bool own_dir = s.dir.empty();
  if (own_dir) {
    std::string pattern = "/tmp/derive-actors-bench-XXXXXX";
    s.dir = ::mkdtemp(pattern.data());
  } else {
    s.dir += "/actors-bench";
    fs::remove_all(s.dir);
    fs::create_directories(s.dir);
  }
  std::printf("# actors_bench in %s\n", s.dir.c_str());
  if (s.only.empty() || s.only == "group") bench_group_commit(s);
  if (s.only.empty() || s.only == "latency") bench_latency(s);
  if (s.only.empty() || s.only == "catch-up") bench_catch_up(s);
  if (s.only.empty() || s.only == "rebuild") bench_rebuild(s);
  if (s.only.empty() || s.only == "forget") bench_forget(s);
  fs::remove_all(s.dir);
  return 0;
}
