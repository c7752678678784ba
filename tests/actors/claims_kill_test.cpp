// Claims under SIGKILL: a child process runs the seat claims while 10 client
// threads race for 20 seats (with retried requests), and is killed at a
// random moment, 10 times or more. Each next child and finally the test
// replay the log: every request exactly one outcome, each seat the holder
// the first claim in log order gives, the seats view equal to the replay.

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>

#include "tests/actors/claims_util.hpp"

namespace derive::testing {
namespace {

constexpr int rounds = 12;

runtime_options kill_options(const std::string& dir) {
  runtime_options o;
  o.data_dir = dir;
  o.storage.map_size = uint64_t{1} << 30;
  o.storage.mode = durability::relaxed;  // a SIGKILL loses no relaxed commit
  o.live_batch = 8;
  return o;
}

[[noreturn]] void child_main(const std::string& dir, int report_fd, int round) {
  runtime rt(kill_options(dir));
  add_seat_claims(rt);
  std::string problem;
  if (auto s = rt.start(); !s) problem = "start: " + s.to_string();
  if (problem.empty())
    if (auto s = wait_quiet(rt, "seats"); !s) problem = "wait: " + s.to_string();
  if (problem.empty()) problem = audit_claims(rt).problem;
  std::string report = problem.empty() ? "ok" : problem;
  [[maybe_unused]] auto n = ::write(report_fd, report.data(), report.size());
  ::close(report_fd);
  std::vector<std::thread> clients;
  for (int c = 0; c < 10; ++c) {
    clients.emplace_back([&rt, c, round] {
      std::mt19937 rng(static_cast<unsigned>(round * 100 + c));
      std::string me = "user" + std::to_string(c);
      for (int i = 0;; ++i) {
        std::string request = me + "-" + std::to_string(round) + "-" + std::to_string(i);
        auto r = seat_request(rng() % 3 != 0, "S" + std::to_string(rng() % 20), request, me);
        append_sync(rt, r);
        if (rng() % 4 == 0) append_sync(rt, r);  // a retried click
      }
    });
  }
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
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

TEST(claims_kill_test, EveryRequestHasOneOutcomeAndEverySeatOneHolderAfterSigkills) {
  temp_dir dir;
  std::mt19937_64 rng(5);
  int verified = 0;
  for (int round = 0; round < rounds; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      child_main(dir.path(), fds[1], round);
    }
    ::close(fds[1]);
    if (round % 3 == 1) {  // killed during recovery
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 60));
    } else {
      EXPECT_EQ(read_report(fds[0], std::chrono::seconds(90)), "ok") << "round " << round;
      ++verified;
      std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 300));
    }
    ::kill(pid, SIGKILL);
    int wstatus = 0;
    ::waitpid(pid, &wstatus, 0);
    EXPECT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << "round " << round;
    ::close(fds[0]);
  }
  EXPECT_GE(verified, 8);

  runtime rt(kill_options(dir.path()));
  add_seat_claims(rt);
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(wait_quiet(rt, "seats"));
  auto a = audit_claims(rt);
  EXPECT_EQ(a.problem, "");
  EXPECT_GT(a.requests.size(), 100u);
  EXPECT_EQ(a.outcomes, a.requests.size());
}

}  // namespace
}  // namespace derive::testing
