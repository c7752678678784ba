// The flush limit: how close the log's durable write path comes to one
// fdatasync per group of appends.
//
// For groups of 1, 10 and 50 requests (one ~107-byte event each, a fresh
// Idempotency-Key per request, as a server makes them) it measures, in one
// run and alternating:
//   file       the baseline: the same bytes per group pwrite'd to a
//              preallocated, pre-zeroed file, one fdatasync per group;
//   journaled  event_log::append_deferred per group on an environment with
//              the runtime's journal (docs/storage.md, "The log's journal"):
//              one flush of the journal per group, durable when it returns;
//   pipelined  event_log::append_deferred per group without a journal (each
//              commit's flush makes the previous durable);
//   synced     event_log::append per group (commit + sync: two flushes, what
//              an isolated append costs).
// Prints the median requests/s over rounds and its ratio to the file's.
//
// Usage: flush_bench [dir (default: a new /tmp/derive-flush-bench-*)] [seconds per run] [rounds]
// Needs a real disk (on tmpfs a flush costs nothing).

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/append_check.hpp"
#include "core/log.hpp"
#include <derive/options.hpp>

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int64_t fixed_ts = 1'700'000'000'000;

derive::event_input make_event(uint64_t n) {
  derive::event_input e;
  e.type = "bench.put";
  e.key = "key-" + std::to_string(100000 + n % 100000);
  e.data = "{\"n\":" + std::to_string(100000 + n % 100000) + ",\"payload\":\"" +
           std::string(48, 'x') + "\"}";
  return e;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::exit(1);
}

double run_file(const std::string& dir, size_t group, double seconds) {
  const std::string path = dir + "/baseline";
  const off_t size = off_t{128} << 20;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) die("cannot create " + path);
  {  // preallocate and zero, then flush, so no write changes the file's size
    std::string zeros(1 << 20, '\0');
    for (off_t at = 0; at < size; at += off_t(zeros.size()))
      if (::pwrite(fd, zeros.data(), zeros.size(), at) != ssize_t(zeros.size())) die("pwrite");
    ::fsync(fd);
  }
  std::string bytes;
  for (size_t i = 0; i < group; ++i) derive::encode_event_record(make_event(i), fixed_ts, bytes);
  uint64_t requests = 0;
  off_t at = 0;
  auto start = clock_type::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  do {
    if (at + off_t(bytes.size()) > size) at = 0;
    if (::pwrite(fd, bytes.data(), bytes.size(), at) != ssize_t(bytes.size())) die("pwrite");
    if (::fdatasync(fd) != 0) die("fdatasync");
    at += off_t(bytes.size());
    requests += group;
  } while (clock_type::now() < deadline);
  std::chrono::duration<double> wall = clock_type::now() - start;
  ::close(fd);
  return requests / wall.count();
}

double run_log(const std::string& dir, size_t group, double seconds, bool pipelined,
               bool journaled = false) {
  derive::environment_options options;
  if (journaled) options.journal_bytes = derive::runtime_options{}.storage.journal_bytes;
  auto env = derive::environment::open(dir, options);
  if (!env) die(env.error().to_string());
  auto log = derive::event_log::open(**env);
  if (!log) die(log.error().to_string());
  const std::string fingerprint = "0123456789abcdef0123456789abcdef";
  uint64_t requests = 0;
  std::vector<derive::checked_append> batch;
  auto start = clock_type::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  do {
    batch.clear();
    for (size_t i = 0; i < group; ++i, ++requests)
      batch.push_back(derive::checked_append_access::make(
          {make_event(requests)}, "bench-" + std::to_string(requests), fingerprint));
    auto out = pipelined ? (*log)->append_deferred(batch) : (*log)->append(batch);
    if (!out[0]) die(out[0].error().to_string());
  } while (clock_type::now() < deadline);
  if (auto st = (*log)->sync(); !st) die(st.to_string());  // the last group, too
  std::chrono::duration<double> wall = clock_type::now() - start;
  return requests / wall.count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string root;
  bool own_root = argc < 2;
  if (own_root) {
    char tmpl[] = "/tmp/derive-flush-bench-XXXXXX";
    if (!::mkdtemp(tmpl)) die("mkdtemp");
    root = tmpl;
  } else {
    root = argv[1];
  }
  const double seconds = argc > 2 ? std::atof(argv[2]) : 2.0;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 3;
  std::printf("flush_bench: %.1f s per run, %d rounds, median requests/s (ratio to file)\n",
              seconds, rounds);
  std::printf("%6s %14s %22s %22s %22s\n", "group", "file", "journaled", "pipelined", "synced");
  for (size_t group : {size_t{1}, size_t{10}, size_t{50}}) {
    std::vector<double> file, journaled, pipelined, synced;
    for (int r = 0; r < rounds; ++r) {
      const std::string dir = root + "/run";
      for (int v = 0; v < 4; ++v) {
        fs::remove_all(dir);
        fs::create_directories(dir);
        if (v == 0) file.push_back(run_file(dir, group, seconds));
        if (v == 1) journaled.push_back(run_log(dir, group, seconds, true, true));
        if (v == 2) pipelined.push_back(run_log(dir, group, seconds, true));
        if (v == 3) synced.push_back(run_log(dir, group, seconds, false));
      }
      fs::remove_all(dir);
    }
    const double f = median(file), j = median(journaled), p = median(pipelined),
                 s = median(synced);
    std::printf("%6zu %14.0f %14.0f (%4.2f) %14.0f (%4.2f) %14.0f (%4.2f)\n", group, f, j, j / f,
                p, p / f, s, s / f);
  }
  if (own_root) fs::remove_all(root);
  return 0;
}
