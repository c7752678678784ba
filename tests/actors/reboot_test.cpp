// The views' environment never flushes (docs/storage.md, "The views'
// commits"): a process crash keeps its pages (the page cache survives), a
// machine crash may tear it. This test runs the runtime in a child process
// under one boot id (an injected boot id file), SIGKILLs it, and restarts:
// under the same boot id the views' environment is kept; under another boot
// id, with its pages scribbled over as a torn write would leave them, it is
// discarded and every view, rebuilt from the log, equals a recomputation;
// after a clean stop it is kept whatever the boot.

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "core/environment.hpp"
#include "tests/actors/random_views.hpp"
#include "tests/actors/views_fixture.hpp"
#include "tests/common/child_process.hpp"

namespace derive::testing {
namespace {

constexpr std::string_view sentinel = "test/sentinel";

runtime_options reboot_options(const temp_dir& dir, const std::string& boot) {
  runtime_options o;
  o.data_dir = dir.sub("data");
  o.storage.map_size = uint64_t{1} << 30;
  o.boot_id_path = dir.sub(boot);
  return o;
}

void write_boot_ids(const temp_dir& dir) {
  for (const char* boot : {"boot-a", "boot-b", "boot-c"})
    std::ofstream(dir.sub(boot)) << "0f1e2d3c-" << boot << "\n";
}

std::string views_dir(const temp_dir& dir) { return dir.sub("data") + "/views"; }

std::string read_marker(const temp_dir& dir) {
  std::ifstream in(views_dir(dir) + "/boot");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text;
}

std::string wait_all(runtime& rt, uint64_t offset) {
  for (const char* name : {"counter", "latest", "buckets"})
    if (auto s = wait_sync(rt, name, offset, std::chrono::seconds(60)); !s)
      return std::string(name) + ": " + s.to_string();
  return "";
}

// A child under `boot`: appends `events` more events, waits until every view
// has them, reports, and idles until it is killed.
void run_and_kill(const temp_dir& dir, const std::string& boot, uint64_t events, uint64_t seed) {
  auto child = child_process::fork([&](int fd) {
    runtime rt(reboot_options(dir, boot));
    for (auto& v : random_views()) rt.add_view(std::move(v));
    std::string problem;
    if (auto s = rt.start(); !s) problem = "start: " + s.to_string();
    std::mt19937_64 rng(seed);
    uint64_t until = rt.head() + events;
    std::atomic<int> in_flight{0};
    while (problem.empty() && rt.head() < until) {
      if (in_flight >= 16) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      append_request r;
      for (int i = 0; i < 20; ++i) r.events.push_back(random_event(rng));
      ++in_flight;
      rt.append(std::move(r), [&in_flight](result<append_outcome>) { --in_flight; });
    }
    while (in_flight > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (problem.empty()) problem = wait_all(rt, rt.head());
    std::string report = problem.empty() ? "ok" : problem;
    [[maybe_unused]] auto n = ::write(fd, report.data(), report.size());
    ::close(fd);
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  });
  EXPECT_EQ(child.read_until_closed(std::chrono::seconds(90)), "ok");
  EXPECT_TRUE(child_process::killed(child.kill()));
}

// Adds a table the runtime never writes to the views' environment: it stays
// as long as the environment is kept.
void add_sentinel(const temp_dir& dir) {
  environment_options o;
  o.map_size = uint64_t{1} << 30;
  o.mode = durability::relaxed;
  auto env = environment::open(views_dir(dir), o);
  ASSERT_TRUE(env) << env.error().to_string();
  ASSERT_TRUE((*env)->database(std::string(sentinel)));
}

bool has_sentinel(const temp_dir& dir) {
  environment_options o;
  o.map_size = uint64_t{1} << 30;
  o.mode = durability::relaxed;
  auto env = environment::open(views_dir(dir), o);
  if (!env) return false;
  auto names = (*env)->database_names(sentinel);
  return names && !names->empty();
}

// Overwrites every page after the two meta pages with garbage, as pages
// written but never flushed before a power loss may read back.
void scribble(const temp_dir& dir) {
  int fd = ::open((views_dir(dir) + "/data.mdb").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  off_t size = ::lseek(fd, 0, SEEK_END);
  long page = ::sysconf(_SC_PAGESIZE);
  std::string junk(static_cast<size_t>(page), '\xa5');
  for (off_t at = 2 * page; at + page <= size; at += page)
    ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), at), page);
  ::close(fd);
}

// Starts a runtime under `boot`, checks every view against a recomputation
// and stops it cleanly.
void restart_and_verify(const temp_dir& dir, const std::string& boot) {
  runtime rt(reboot_options(dir, boot));
  for (auto& v : random_views()) rt.add_view(std::move(v));
  ASSERT_TRUE(rt.start());
  uint64_t head = rt.head();
  ASSERT_GT(head, 0u);
  ASSERT_EQ(wait_all(rt, head), "");
  EXPECT_EQ(verify_random_views(rt), "");
  {
    auto snap = rt.snapshot("counter");  // a snapshot must end before the runtime stops
    ASSERT_TRUE(snap);
    auto total = snap->get("_total");
    ASSERT_TRUE(total && *total);
    EXPECT_EQ(json::parse(**total), json(head));  // every event exactly once
  }
  rt.stop();
}

TEST(reboot_test, TheViewsAreKeptAfterAProcessCrashAndRebuiltAfterAMachineCrash) {
  temp_dir dir;
  write_boot_ids(dir);

  // A process crash: the same boot; the views' environment is kept.
  run_and_kill(dir, "boot-a", 3'000, 1);
  EXPECT_NE(read_marker(dir).find("boot-a\ndirty"), std::string::npos) << read_marker(dir);
  add_sentinel(dir);
  restart_and_verify(dir, "boot-a");
  EXPECT_TRUE(has_sentinel(dir));
  EXPECT_NE(read_marker(dir).find("boot-a\nclean"), std::string::npos) << read_marker(dir);

  // A machine crash: killed dirty, then another boot, the pages torn.
  run_and_kill(dir, "boot-a", 3'000, 2);
  scribble(dir);
  restart_and_verify(dir, "boot-b");
  EXPECT_FALSE(has_sentinel(dir));
  EXPECT_NE(read_marker(dir).find("boot-b\nclean"), std::string::npos) << read_marker(dir);

  // A clean stop, then another boot: kept.
  add_sentinel(dir);
  restart_and_verify(dir, "boot-c");
  EXPECT_TRUE(has_sentinel(dir));
}

}  // namespace
}  // namespace derive::testing
