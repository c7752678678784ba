// SIGKILL while a processor emits: a child process runs the runtime with the
// echo processor (processor_util.hpp) while it appends inputs, and is killed
// at a random moment, often between a processor's append of its outputs and
// the commit of its offset. The next child recovers, lets the processor catch
// up and checks the whole log: every input has exactly one set of outputs.

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>

#include "tests/actors/processor_util.hpp"

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

std::string read_report(int fd, std::chrono::milliseconds timeout) {
  std::string out;
  pollfd p{fd, POLLIN, 0};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST(processor_kill_test, EveryInputHasExactlyOneSetOfOutputsAfterSigkill) {
  temp_dir dir;
  std::mt19937_64 rng(11);
  int verified = 0;
  for (int round = 0; round < rounds; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      child_main(dir.path(), fds[1], rng());
    }
    ::close(fds[1]);
    // Every third round is killed during recovery, the others while appending.
    if (round % 3 == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 60));
    } else {
      EXPECT_EQ(read_report(fds[0], std::chrono::seconds(90)), "ok") << "round " << round;
      ++verified;
      std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 300));
    }
    ::kill(pid, SIGKILL);
    int wstatus = 0;
    ::waitpid(pid, &wstatus, 0);
    EXPECT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << "round " << round;
    ::close(fds[0]);
  }
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
