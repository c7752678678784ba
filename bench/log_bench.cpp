// Append throughput of derive::event_log against raw LMDB in the same run.
//
// For batch sizes 1, 100 and 1000 events of ~100 encoded bytes, and for
// durability full (synced commits) and relaxed (MDB_NOSYNC), it measures:
//   raw      MDB_APPEND of the same encoded records into an MDB_INTEGERKEY
//            database, one transaction per batch, same sync setting;
//   log      event_log::append of one request per batch (one transaction);
//   log+key  the same with a fresh Idempotency-Key per request.
// Each is run `rounds` times, alternating, for `seconds` each; the median
// events/s (wall clock) is printed with the median over rounds of the ratio
// to raw, and the same ratio of events per CPU-second (process user+system
// time), which other load on the machine disturbs less. In full mode the wall
// clock is dominated by fsync.
//
// Usage: log_bench [dir (default: a new /tmp/derive-log-bench-*)] [seconds per run] [rounds]
// fsync numbers only mean something on a real disk (not tmpfs).

#include <lmdb.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/append_check.hpp"
#include "core/log.hpp"

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int64_t fixed_ts = 1'700'000'000'000;

enum class variant { raw, log, log_key };

struct run_config {
  derive::durability mode;
  size_t batch;
  double seconds;
};

// ~100 bytes per encoded record.
std::vector<derive::event_input> make_batch(size_t n) {
  std::vector<derive::event_input> events;
  for (size_t i = 0; i < n; ++i) {
    derive::event_input e;
    e.type = "bench.put";
    e.key = "key-" + std::to_string(100000 + i);
    e.data = "{\"n\":" + std::to_string(100000 + i) + ",\"payload\":\"" + std::string(48, 'x') +
             "\"}";
    events.push_back(std::move(e));
  }
  return events;
}

void check(int rc, const char* what) {
  if (rc != MDB_SUCCESS) {
    std::fprintf(stderr, "%s: %s\n", what, mdb_strerror(rc));
    std::exit(1);
  }
}

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

// Events per wall-clock second and per CPU second of one run.
struct rate {
  double wall = 0;
  double cpu = 0;
};

// Measures from construction to finish().
class stopwatch {
 public:
  rate finish(uint64_t events) const {
    std::chrono::duration<double> wall = clock_type::now() - wall_start_;
    return {events / wall.count(), events / std::max(cpu_seconds() - cpu_start_, 1e-9)};
  }

 private:
  clock_type::time_point wall_start_ = clock_type::now();
  double cpu_start_ = cpu_seconds();
};

rate run_raw(const std::string& dir, const run_config& c) {
  MDB_env* env = nullptr;
  check(mdb_env_create(&env), "mdb_env_create");
  check(mdb_env_set_mapsize(env, uint64_t{64} << 30), "mdb_env_set_mapsize");
  check(mdb_env_set_maxdbs(env, 16), "mdb_env_set_maxdbs");
  unsigned flags = MDB_NOTLS | (c.mode == derive::durability::relaxed ? MDB_NOSYNC : 0);
  check(mdb_env_open(env, dir.c_str(), flags, 0644), "mdb_env_open");
  MDB_txn* txn = nullptr;
  MDB_dbi dbi = 0;
  check(mdb_txn_begin(env, nullptr, 0, &txn), "mdb_txn_begin");
  check(mdb_dbi_open(txn, "log", MDB_CREATE | MDB_INTEGERKEY, &dbi), "mdb_dbi_open");
  check(mdb_txn_commit(txn), "mdb_txn_commit");

  std::vector<std::string> records;
  for (const auto& e : make_batch(c.batch)) {
    records.emplace_back();
    derive::encode_event_record(e, fixed_ts, records.back());
  }
  uint64_t next = 1;
  stopwatch watch;
  auto deadline = clock_type::now() + std::chrono::duration<double>(c.seconds);
  do {
    check(mdb_txn_begin(env, nullptr, 0, &txn), "mdb_txn_begin");
    MDB_cursor* cur = nullptr;
    check(mdb_cursor_open(txn, dbi, &cur), "mdb_cursor_open");
    for (const auto& r : records) {
      MDB_val k{sizeof next, &next}, v{r.size(), const_cast<char*>(r.data())};
      check(mdb_cursor_put(cur, &k, &v, MDB_APPEND), "mdb_cursor_put");
      ++next;
    }
    mdb_cursor_close(cur);
    check(mdb_txn_commit(txn), "mdb_txn_commit");
  } while (clock_type::now() < deadline);
  rate r = watch.finish(next - 1);
  mdb_env_sync(env, 1);  // as derive::environment does on close: every run ends clean
  mdb_env_close(env);
  return r;
}

rate run_log(const std::string& dir, const run_config& c, bool with_key) {
  derive::environment_options eo;
  eo.mode = c.mode;
  auto env = derive::environment::open(dir, eo);
  if (!env) {
    std::fprintf(stderr, "%s\n", env.error().to_string().c_str());
    std::exit(1);
  }
  auto log = derive::event_log::open(**env);
  if (!log) {
    std::fprintf(stderr, "%s\n", log.error().to_string().c_str());
    std::exit(1);
  }
  // A keyed request is made anew per append (its key changes), as a server
  // makes every request; an unkeyed one is made once.
  const auto events = make_batch(c.batch);
  const std::string fingerprint = "0123456789abcdef0123456789abcdef";
  std::vector<derive::checked_append> group{
      derive::checked_append_access::make(events, "", fingerprint)};
  uint64_t n = 0;
  stopwatch watch;
  auto deadline = clock_type::now() + std::chrono::duration<double>(c.seconds);
  do {
    if (with_key)
      group[0] = derive::checked_append_access::make(events, "bench-key-" + std::to_string(n),
                                                     fingerprint);
    auto out = (*log)->append(group);
    if (!out[0]) {
      std::fprintf(stderr, "%s\n", out[0].error().to_string().c_str());
      std::exit(1);
    }
    n += c.batch;
  } while (clock_type::now() < deadline);
  return watch.finish(n);
}

rate run_once(const std::string& root, const run_config& c, variant v) {
  std::string dir = root + "/run";
  fs::remove_all(dir);
  fs::create_directories(dir);
  rate r = v == variant::raw ? run_raw(dir, c) : run_log(dir, c, v == variant::log_key);
  fs::remove_all(dir);
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double median_ratio(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r;
  for (size_t i = 0; i < a.size(); ++i) r.push_back(a[i] / b[i]);
  return median(r);
}

struct rates {
  std::vector<double> wall, cpu;
  void add(rate r) {
    wall.push_back(r.wall);
    cpu.push_back(r.cpu);
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string root;
  bool own_root = argc < 2;
  if (own_root) {
    char tmpl[] = "/tmp/derive-log-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return 1;
    root = tmpl;
  } else {
    root = argv[1];
  }
  double seconds = argc >= 3 ? std::atof(argv[2]) : 0.5;
  int rounds = argc >= 4 ? std::max(1, std::atoi(argv[3])) : 5;
  std::string sample;
  derive::encode_event_record(make_batch(1)[0], fixed_ts, sample);
  std::printf("log append benchmark in %s, %d rounds of %.2fs each, record %zu bytes\n",
              root.c_str(), rounds, seconds, sample.size());
  std::printf("%-8s %5s %11s %11s %11s %8s %8s %8s %8s\n", "mode", "batch", "raw ev/s",
              "log ev/s", "log+key", "log/raw", "key/raw", "cpu:log", "cpu:key");
  for (auto mode : {derive::durability::full, derive::durability::relaxed}) {
    for (size_t batch : {size_t{1}, size_t{100}, size_t{1000}}) {
      run_config c{mode, batch, seconds};
      rates raw, log, key;
      for (int r = 0; r < rounds; ++r) {
        // Rotate the order so that no variant always runs first.
        for (int i = 0; i < 3; ++i) {
          switch ((r + i) % 3) {
            case 0: raw.add(run_once(root, c, variant::raw)); break;
            case 1: log.add(run_once(root, c, variant::log)); break;
            default: key.add(run_once(root, c, variant::log_key)); break;
          }
        }
      }
      // Ratios are taken per round (runs next to each other in time see the
      // same machine), then the median over rounds.
      std::printf("%-8s %5zu %11.0f %11.0f %11.0f %8.2f %8.2f %8.2f %8.2f\n",
                  mode == derive::durability::full ? "full" : "relaxed", batch,
                  median(raw.wall), median(log.wall), median(key.wall),
                  median_ratio(log.wall, raw.wall), median_ratio(key.wall, raw.wall),
                  median_ratio(log.cpu, raw.cpu), median_ratio(key.cpu, raw.cpu));
      std::fflush(stdout);
    }
  }
  if (own_root) fs::remove_all(root);
  return 0;
}
