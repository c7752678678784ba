// SIGKILL during a rebuild and during a cutover (docs/storage.md, "View
// versions"): round r declares versions r and r+1 of `counter` and `latest`
// (the same code, so every version equals a recomputation) and `buckets`
// derived from `latest`; each round starts a new version building beside the
// served one from the whole log, and most cut over while the child appends.
// The child is killed at random moments (during the rebuild, around the
// cutover). Every next child checks that the served versions are complete:
// each equals a recomputation from the log at its offset.

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <tuple>
#include <thread>

#include "core/environment.hpp"
#include "core/view_names.hpp"
#include "core/view_store.hpp"
#include "tests/actors/random_views.hpp"
#include "tests/actors/views_fixture.hpp"
#include "tests/common/child_process.hpp"

namespace derive::testing {
namespace {

constexpr int rounds = 20;  // 10 killed while building, 10 around the cutover

runtime_options kill_options(const std::string& dir) {
  runtime_options o;
  o.data_dir = dir;
  o.storage.map_size = uint64_t{1} << 30;
  o.storage.mode = durability::relaxed;  // a SIGKILL loses no relaxed commit
  // Small batches: a copy building beside shows progress (a commit) early and
  // takes long enough that the early kills land while it builds. With blind
  // writes `latest` builds fast, and with batches of 1,000 a copy could be
  // done before any even round's kill (no copy resumed: the test failed).
  o.catch_up_batch = 100;
  return o;
}

std::vector<view_def> versioned_views(uint32_t round) {
  std::vector<view_def> out;
  for (uint32_t v : {round + 1, round + 2}) {
    out.push_back(view_def("counter", v).from_log().apply(apply_counter));
    out.push_back(view_def("latest", v).from_log().apply(apply_latest));
  }
  out.push_back(view_def("buckets").from_view("latest").apply_change(apply_buckets));
  return out;
}

// The offset each stored copy of `counter` and `latest` had reached, by
// (view, version, generation), read while no child runs.
using copy_offsets = std::map<std::tuple<std::string, uint32_t, uint32_t>, uint64_t>;
copy_offsets stored_offsets(const std::string& dir) {
  copy_offsets out;
  const auto views = std::filesystem::path(dir) / "views";
  if (!std::filesystem::exists(views)) return out;  // before the first child
  auto env = environment::open(views.string());
  if (!env) return out;
  for (const char* view : {"counter", "latest"}) {
    auto stored = stored_versions(**env, view);
    if (!stored) continue;
    for (const auto& s : *stored)
      if (auto store = view_store::open(**env, view, s.version, {}, s.label))
        out[{view, s.version, s.generation}] = (*store)->offset();
  }
  return out;
}

// Empty if every copy still declared starts where it was before the kill
// (a version building beside resumes, it does not start over from 0). Each
// building copy that resumed with progress adds a line to `resumed_log`.
std::string check_resumed(runtime& rt, const copy_offsets& before,
                          const std::string& resumed_log) {
  for (const char* view : {"counter", "latest"}) {
    auto info = rt.view(view);
    if (!info) return std::string("no view ") + view;
    for (const auto& v : info->versions) {
      if (v.role == version_role::retired) continue;
      auto it = before.find({view, v.version, v.generation});
      if (it == before.end() || it->second == 0) continue;
      const std::string copy =
          std::string(view) + " " + std::to_string(v.version) + ".g" + std::to_string(v.generation);
      if (v.offset < it->second)
        return copy + " started at offset " + std::to_string(v.offset) + ", below the " +
               std::to_string(it->second) + " it had reached";
      if (v.role == version_role::building)
        std::ofstream(resumed_log, std::ios::app) << copy << " at " << it->second << "\n";
    }
  }
  return "";
}

// The lines of `resumed_log`: building copies killed with progress that resumed.
int resumed_copies(const std::string& resumed_log) {
  std::ifstream in(resumed_log);
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

[[noreturn]] void child_main(const std::string& dir, int report_fd, uint64_t seed,
                             uint32_t round, const copy_offsets& before,
                             const std::string& resumed_log) {
  runtime rt(kill_options(dir));
  for (auto& v : versioned_views(round)) rt.add_view(std::move(v));
  std::string problem;
  if (auto s = rt.start(); !s) problem = "start: " + s.to_string();
  if (problem.empty()) problem = check_resumed(rt, before, resumed_log);
  if (problem.empty()) problem = verify_random_views(rt);
  report_then_append_random(rt, report_fd, problem, seed, 8, 40'000);
}

TEST(versions_kill_test, ServedVersionsStayCompleteAcrossKillsDuringRebuildsAndCutovers) {
  temp_dir dir;
  std::mt19937_64 rng(11);
  temp_dir notes;
  const std::string resumed_log = notes.path() + "/resumed";
  int cutovers_seen = 0;
  for (int round = 0; round < rounds; ++round) {
    const uint64_t seed = rng();
    const copy_offsets before = stored_offsets(dir.path());
    auto child = child_process::fork([&](int fd) {
      child_main(dir.path(), fd, seed, static_cast<uint32_t>(round), before, resumed_log);
    });
    ASSERT_TRUE(child.started());
    EXPECT_EQ(child.read_until_closed(std::chrono::seconds(60)), "ok") << "round " << round;
    // Even rounds: killed early, while the new version builds; odd rounds:
    // later, around its cutover.
    auto wait = round % 2 == 0 ? std::chrono::milliseconds(5 + rng() % 100)
                               : std::chrono::milliseconds(150 + rng() % 600);
    std::this_thread::sleep_for(wait);
    EXPECT_TRUE(child_process::killed(child.kill())) << "round " << round;
  }
  // Recovery here: the served versions are complete; the newest builds on and
  // cuts over, and is complete too.
  runtime rt(kill_options(dir.path()));
  for (auto& v : versioned_views(rounds)) rt.add_view(std::move(v));
  ASSERT_TRUE(rt.start());
  EXPECT_EQ(verify_random_views(rt), "");
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (rt.view("counter")->version != rounds + 2 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(rt.view("counter")->version, uint32_t{rounds + 2});
  cutovers_seen = static_cast<int>(rt.view("counter")->version);
  EXPECT_EQ(verify_random_views(rt), "");
  auto snap = rt.snapshot("counter");
  ASSERT_TRUE(snap);
  ASSERT_TRUE(wait_sync(rt, "counter", rt.head()));
  EXPECT_GT(cutovers_seen, 0);
  std::printf("building copies resumed with progress: %d\n", resumed_copies(resumed_log));
  EXPECT_GT(resumed_copies(resumed_log), 0);  // building copies killed with progress resumed
}

// Rebuilding the served version under its own number (a new generation of
// its store beside it): killed while the copy builds and around its cutover.
std::vector<view_def> fixed_views() {
  return {view_def("counter", 1).from_log().apply(apply_counter),
          view_def("latest", 1).from_log().apply(apply_latest),
          view_def("buckets").from_view("latest").apply_change(apply_buckets)};
}

// True if a copy of the served version of `view` builds beside it.
bool copy_building(runtime& rt, const std::string& view) {
  auto info = rt.view(view);
  if (!info) return false;
  for (const auto& v : info->versions)
    if (v.role == version_role::building) return true;
  return false;
}

[[noreturn]] void rebuild_child_main(const std::string& dir, int report_fd, uint64_t seed,
                                     const copy_offsets& before,
                                     const std::string& resumed_log) {
  runtime rt(kill_options(dir));
  for (auto& v : fixed_views()) rt.add_view(std::move(v));
  std::string problem;
  if (auto s = rt.start(); !s) problem = "start: " + s.to_string();
  if (problem.empty()) problem = check_resumed(rt, before, resumed_log);
  if (problem.empty()) problem = verify_random_views(rt);
  // A copy left building by the last kill goes on (resumed); else a new one.
  for (const char* view : {"counter", "latest"})
    if (problem.empty() && !copy_building(rt, view))
      if (auto s = rt.rebuild(view, 1); !s) problem = "rebuild: " + s.to_string();
  report_then_append_random(rt, report_fd, problem, seed, 8, 40'000);
}

TEST(versions_kill_test, ServedCopiesStayCompleteAcrossKillsDuringRebuildsOfTheServedVersion) {
  temp_dir dir;
  std::mt19937_64 rng(12);
  temp_dir notes;
  const std::string resumed_log = notes.path() + "/resumed";
  for (int round = 0; round < rounds; ++round) {
    const uint64_t seed = rng();
    const copy_offsets before = stored_offsets(dir.path());
    auto child = child_process::fork(
        [&](int fd) { rebuild_child_main(dir.path(), fd, seed, before, resumed_log); });
    ASSERT_TRUE(child.started());
    EXPECT_EQ(child.read_until_closed(std::chrono::seconds(60)), "ok") << "round " << round;
    auto wait = round % 2 == 0 ? std::chrono::milliseconds(5 + rng() % 100)
                               : std::chrono::milliseconds(150 + rng() % 600);
    std::this_thread::sleep_for(wait);
    EXPECT_TRUE(child_process::killed(child.kill())) << "round " << round;
  }
  uint32_t generation = 0;
  {
    runtime rt(kill_options(dir.path()));
    for (auto& v : fixed_views()) rt.add_view(std::move(v));
    ASSERT_TRUE(rt.start());
    EXPECT_EQ(verify_random_views(rt), "");
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while ((copy_building(rt, "counter") || copy_building(rt, "latest")) &&
           std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_FALSE(copy_building(rt, "counter") || copy_building(rt, "latest"));
    EXPECT_EQ(verify_random_views(rt), "");
    auto latest = rt.view("latest");  // (not in the range-for: it would dangle)
    for (const auto& v : latest->versions)
      if (v.role == version_role::serving) generation = v.generation;
  }
  EXPECT_GT(generation, 0u);  // copies did cut over
  std::printf("building copies resumed with progress: %d\n", resumed_copies(resumed_log));
  EXPECT_GT(resumed_copies(resumed_log), 0);
  {  // the emptied tables of the retired copies go at the next start
    runtime rt(kill_options(dir.path()));
    for (auto& v : fixed_views()) rt.add_view(std::move(v));
    ASSERT_TRUE(rt.start());
    EXPECT_EQ(verify_random_views(rt), "");
  }
  // Only the served copies are stored.
  auto env = environment::open((std::filesystem::path(dir.path()) / "views").string());
  ASSERT_TRUE(env);
  for (const char* view : {"counter", "latest", "buckets"}) {
    auto stored = stored_versions(**env, view);
    ASSERT_TRUE(stored);
    EXPECT_LE(stored->size(), 1u) << view;
  }
}

}  // namespace
}  // namespace derive::testing
