// Transfers under SIGKILL: a child process runs the transfers processor while
// 10 client threads make conflicting transfers between 10 accounts (some to
// an unknown account, two accounts closed from the fourth round on, some
// requests retried), and is killed at a random moment, 12 times: often
// between a debit and its credit. Each next child and finally the test
// replay the log: every request exactly one final outcome, every debit
// credited or refunded exactly once, no balance below zero, the sum of the
// balances constant (transfer_util.hpp).

#include <random>
#include <thread>

#include "tests/actors/transfer_util.hpp"
#include "tests/common/kill_rounds.hpp"

namespace derive::testing {
namespace {

constexpr int rounds = 12, accounts = 10;

runtime_options kill_options(const std::string& dir) {
  runtime_options o;
  o.data_dir = dir;
  o.storage.map_size = uint64_t{1} << 30;
  o.storage.mode = durability::relaxed;  // a SIGKILL loses no relaxed commit
  o.live_batch = 8;
  return o;
}

std::string account(uint64_t n) { return "acct" + std::to_string(n % accounts); }

[[noreturn]] void child_main(const std::string& dir, int report_fd, int round) {
  runtime rt(kill_options(dir));
  add_transfers(rt);
  std::string problem;
  if (auto s = rt.start(); !s) problem = "start: " + s.to_string();
  if (problem.empty())
    if (auto s = wait_quiet(rt, "accounts"); !s) problem = "wait: " + s.to_string();
  if (problem.empty())
    if (auto s = wait_quiet(rt, "transfer_outcomes"); !s) problem = "wait: " + s.to_string();
  if (problem.empty()) problem = audit_transfers(rt).problem;
  std::string report = problem.empty() ? "ok" : problem;
  [[maybe_unused]] auto n = ::write(report_fd, report.data(), report.size());
  ::close(report_fd);
  for (int a = 0; a < accounts; ++a) append_sync(rt, open_account(account(a), 100));  // replays
  if (round >= 3) {
    append_sync(rt, close_account("acct8"));
    append_sync(rt, close_account("acct9"));
  }
  std::vector<std::thread> clients;
  for (int c = 0; c < 10; ++c) {
    clients.emplace_back([&rt, c, round] {
      std::mt19937 rng(static_cast<unsigned>(round * 100 + c));
      for (int i = 0;; ++i) {
        std::string request = "c" + std::to_string(c) + "-" + std::to_string(round) + "-" +
                              std::to_string(i);
        std::string to = rng() % 20 == 0 ? "ghost" : account(rng());
        auto r = transfer_request(request, account(rng()), to, 1 + rng() % 60);
        append_sync(rt, r);
        if (rng() % 4 == 0) append_sync(rt, r);  // a retried click
      }
    });
  }
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

TEST(transfer_kill_test, EveryTransferHasOneOutcomeAndNoMoneyIsLostAfterSigkills) {
  temp_dir dir;
  int verified = run_kill_rounds(rounds, 13, std::chrono::milliseconds(100),
                                 [&](int fd, int round, uint64_t) { child_main(dir.path(), fd, round); });
  EXPECT_GE(verified, 8);

  runtime rt(kill_options(dir.path()));
  add_transfers(rt);
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(wait_quiet(rt, "accounts"));
  ASSERT_TRUE(wait_quiet(rt, "transfer_outcomes"));
  auto a = audit_transfers(rt);
  EXPECT_EQ(a.problem, "");
  EXPECT_GT(a.requests.size(), 100u);
  EXPECT_EQ(a.finals["credited"] + a.finals["refunded"] + a.finals["rejected"],
            static_cast<int>(a.requests.size()));
  EXPECT_GT(a.finals["refunded"], 0);
  EXPECT_EQ(a.opened, 100 * accounts);
}

}  // namespace
}  // namespace derive::testing
