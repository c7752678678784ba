// SIGKILL while a processor emits: a child process runs the runtime with the
// echo processor (processor_util.hpp) while it appends inputs, and is killed
// at a random moment, often between a processor's append of its outputs and
// the commit of its offset. The next child recovers, lets the processor catch
// up and checks the whole log: every input has exactly one set of outputs.

#include <atomic>
#include <random>
#include <thread>

#include "tests/actors/processor_util.hpp"
#include "tests/common/kill_rounds.hpp"

namespace derive::testing {
namespace {

constexpr int rounds = 12;
constexpr uint64_t max_head = 200'000;

runtime_options kill_options(const std::string& dir) {
  runtime_options o;
  o.data_dir = dir;
  o.storage.map_size = uint64_t{1} << 30;
  o.storage.mode = durability::relaxed;  // a SIGKILL loses no relaxed commit
  o.live_batch = 8;                      // many commits, many windows
  return o;
}

[[noreturn]] void child_main(const std::string& dir, int report_fd, uint64_t seed) {
  runtime rt(kill_options(dir));
  rt.add_processor(echo_processor());
  std::string problem;
  if (auto s = rt.start(); !s) problem = "start: " + s.to_string();
  if (problem.empty())
    if (auto s = wait_quiet(rt, "echo"); !s) problem = "wait: " + s.to_string();
  if (problem.empty()) problem = verify_outputs(rt);
  std::string report = problem.empty() ? "ok" : problem;
  [[maybe_unused]] auto n = ::write(report_fd, report.data(), report.size());
  ::close(report_fd);
  std::mt19937_64 rng(seed);
  std::atomic<int> in_flight{0};
  for (;;) {
    if (in_flight >= 8 || rt.head() >= max_head) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    append_request r;
    for (int i = 0, k = 1 + static_cast<int>(rng() % 4); i < k; ++i)
      r.events.push_back(make_event("in", "k" + std::to_string(rng() % 100)));
    ++in_flight;
    rt.append(std::move(r), [&in_flight](result<append_outcome>) { --in_flight; });
  }
}

TEST(processor_kill_test, EveryInputHasExactlyOneSetOfOutputsAfterSigkill) {
  temp_dir dir;
  int verified = run_kill_rounds(rounds, 11, std::chrono::milliseconds(50),
                                 [&](int fd, int, uint64_t seed) { child_main(dir.path(), fd, seed); });
  EXPECT_GE(verified, 8);

  runtime rt(kill_options(dir.path()));
  rt.add_processor(echo_processor());
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(wait_quiet(rt, "echo"));
  EXPECT_EQ(verify_outputs(rt), "");
  uint64_t inputs = 0;
  auto log = rt.read_log(1, 1'000'000);
  ASSERT_TRUE(log);
  for (auto& e : *log) inputs += e.type == "in";
  EXPECT_GT(inputs, 100u);
  EXPECT_EQ(rt.head(), inputs * (1 + fanout));
  EXPECT_EQ(read_view(rt, "echo").state["inputs"], json(inputs));  // each applied once
}

}  // namespace
}  // namespace derive::testing
