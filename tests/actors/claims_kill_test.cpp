// Claims under SIGKILL: a child process runs the seat claims while 10 client
// threads race for 20 seats (with retried requests), and is killed at a
// random moment, 10 times or more. Each next child and finally the test
// replay the log: every request exactly one outcome, each seat the holder
// the first claim in log order gives, the seats view equal to the replay.

#include <atomic>
#include <random>
#include <thread>

#include "tests/actors/claims_util.hpp"
#include "tests/common/kill_rounds.hpp"

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

TEST(claims_kill_test, EveryRequestHasOneOutcomeAndEverySeatOneHolderAfterSigkills) {
  temp_dir dir;
  int verified = run_kill_rounds(rounds, 5, std::chrono::milliseconds(100),
                                 [&](int fd, int round, uint64_t) { child_main(dir.path(), fd, round); });
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
