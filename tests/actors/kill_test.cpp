// SIGKILL during processing, at least 10 times at random moments: a child
// process runs the runtime (appending random events while three views
// process them) and is killed; the next child recovers and checks that every
// view equals a recomputation from the log — the counting view proves that no
// event was applied twice or skipped — then goes on appending until it is
// killed in turn. Finally the test itself reopens the data and checks again.

#include <atomic>
#include <thread>

#include "tests/actors/random_views.hpp"
#include "tests/actors/views_fixture.hpp"
#include "tests/common/kill_rounds.hpp"

namespace derive::testing {
namespace {

constexpr int rounds = 12;
constexpr uint64_t max_events = 150'000;  // children stop appending beyond this

runtime_options kill_options(const std::string& dir) {
  runtime_options o;
  o.data_dir = dir;
  o.storage.map_size = uint64_t{1} << 30;
  // A killed process loses no relaxed commit (only a power loss would), and
  // relaxed keeps the test fast; the runner commits are what is under test.
  o.storage.mode = durability::relaxed;
  o.catch_up_batch = 2'000;  // more commits, more moments to be killed in
  return o;
}

// Waits until every view reached `offset`; "" or what went wrong.
std::string wait_all(runtime& rt, uint64_t offset) {
  for (const char* name : {"counter", "latest", "buckets"})
    if (auto s = wait_sync(rt, name, offset, std::chrono::seconds(60)); !s)
      return std::string(name) + ": " + s.to_string();
  return "";
}

// The child: recover, check, report on `report_fd`, then append until killed.
[[noreturn]] void child_main(const std::string& dir, int report_fd, uint64_t seed) {
  runtime rt(kill_options(dir));
  for (auto& v : random_views()) rt.add_view(std::move(v));
  std::string problem;
  if (auto s = rt.start(); !s) problem = "start: " + s.to_string();
  if (problem.empty()) problem = wait_all(rt, rt.head());
  if (problem.empty()) problem = verify_random_views(rt);
  report_then_append_random(rt, report_fd, problem, seed, 16, max_events);
}

TEST(kill_test, EveryViewRecoversExactlyOnceAfterSigkill) {
  temp_dir dir;
  int verified = run_kill_rounds(rounds, 7, std::chrono::milliseconds(20),
                                 [&](int fd, int, uint64_t seed) { child_main(dir.path(), fd, seed); });
  EXPECT_GE(verified, 8);

  // Recovery in this process after the last kill.
  runtime rt(kill_options(dir.path()));
  for (auto& v : random_views()) rt.add_view(std::move(v));
  ASSERT_TRUE(rt.start());
  uint64_t head = rt.head();
  EXPECT_GT(head, 0u);
  ASSERT_EQ(wait_all(rt, head), "");
  EXPECT_EQ(verify_random_views(rt), "");
  auto snap = rt.snapshot("counter");
  ASSERT_TRUE(snap);
  auto total = snap->get("_total");
  ASSERT_TRUE(total && *total);
  EXPECT_EQ(json::parse(**total), json(head));  // every event exactly once
}

}  // namespace
}  // namespace derive::testing
