// A transfer in steps through the log (include/derive/transfer.hpp): debit,
// then credit or a compensating refund; 20 concurrent clients make 1,000
// conflicting transfers between 10 accounts, some of them closed on the way
// and some to an unknown account: no balance below zero, the sum of the
// balances constant, every request exactly one final outcome.

#include <atomic>
#include <random>
#include <thread>

#include "tests/actors/transfer_util.hpp"

namespace derive::testing {
namespace {

class transfer_test : public ::testing::Test {
 protected:
  runtime_options options() {
    runtime_options o;
    o.data_dir = dir_.path();
    return o;
  }
  temp_dir dir_;
};

json outcome(runtime& rt, const std::string& request) {
  return read_view(rt, "transfer_outcomes").state[request];
}

TEST_F(transfer_test, DebitThenCreditOrRefund) {
  runtime rt(options());
  add_transfers(rt);
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(append_sync(rt, open_account("ann", 100)));
  ASSERT_TRUE(append_sync(rt, open_account("bob", 0)));
  auto again = open_account("ann", 500);  // opened before: ignored
  again.idempotency_key.clear();
  ASSERT_TRUE(append_sync(rt, again));
  ASSERT_TRUE(append_sync(rt, transfer_request("r1", "ann", "bob", 30)));
  ASSERT_TRUE(append_sync(rt, transfer_request("r2", "ann", "bob", 71)));
  ASSERT_TRUE(append_sync(rt, transfer_request("r3", "ann", "nobody", 20)));
  ASSERT_TRUE(append_sync(rt, transfer_request("r4", "carl", "bob", 1)));
  ASSERT_TRUE(append_sync(rt, transfer_request("r5", "ann", "ann", 1)));
  ASSERT_TRUE(wait_quiet(rt, "accounts"));
  ASSERT_TRUE(append_sync(rt, close_account("bob")));
  ASSERT_TRUE(append_sync(rt, transfer_request("r6", "ann", "bob", 10)));
  ASSERT_TRUE(append_sync(rt, transfer_request("r7", "bob", "ann", 10)));
  ASSERT_TRUE(wait_quiet(rt, "accounts"));
  ASSERT_TRUE(wait_quiet(rt, "transfer_outcomes"));
  EXPECT_EQ(outcome(rt, "r1")["result"], "credited");
  EXPECT_EQ(outcome(rt, "r1")["amount"], 30);
  EXPECT_EQ(outcome(rt, "r2")["reason"], "insufficient_funds");
  EXPECT_EQ(outcome(rt, "r3")["result"], "refunded");
  EXPECT_EQ(outcome(rt, "r3")["reason"], "unknown_destination");
  EXPECT_EQ(outcome(rt, "r4")["reason"], "unknown_source");
  EXPECT_EQ(outcome(rt, "r5")["reason"], "same_account");
  EXPECT_EQ(outcome(rt, "r6")["reason"], "destination_closed");
  EXPECT_EQ(outcome(rt, "r7")["result"], "rejected");
  EXPECT_EQ(outcome(rt, "r7")["reason"], "source_closed");
  auto accounts = read_view(rt, "accounts").state;
  EXPECT_EQ(accounts["ann"], json({{"balance", 70}, {"open", true}}));
  EXPECT_EQ(accounts["bob"], json({{"balance", 30}, {"open", false}}));
  auto a = audit_transfers(rt);
  EXPECT_EQ(a.problem, "");
  EXPECT_EQ(a.opened, 100);
}

TEST_F(transfer_test, ARetriedRequestMovesMoneyOnce) {
  runtime rt(options());
  add_transfers(rt);
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(append_sync(rt, open_account("ann", 100)));
  ASSERT_TRUE(append_sync(rt, open_account("bob", 0)));
  ASSERT_TRUE(append_sync(rt, transfer_request("r1", "ann", "bob", 30)));
  auto retry = append_sync(rt, transfer_request("r1", "ann", "bob", 30));
  ASSERT_TRUE(retry);
  EXPECT_TRUE(retry->replayed);
  auto twice = transfer_request("r1", "ann", "bob", 30);  // reaches the log twice
  twice.idempotency_key.clear();
  ASSERT_TRUE(append_sync(rt, twice));
  ASSERT_TRUE(wait_quiet(rt, "accounts"));
  ASSERT_TRUE(wait_quiet(rt, "transfer_outcomes"));
  EXPECT_EQ(read_view(rt, "accounts").state["bob"]["balance"], 30);
  auto a = audit_transfers(rt);
  EXPECT_EQ(a.problem, "");
  EXPECT_EQ(a.finals["credited"], 1);
}

TEST_F(transfer_test, ADebitTheProcessorDidNotEmitIsNotCredited) {
  runtime rt(options());
  add_transfers(rt);
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(append_sync(rt, open_account("bob", 0)));
  ASSERT_TRUE(append_one(rt, transfers.debited_type, "ann",
                         {{"request", "forged"}, {"from", "ann"}, {"to", "bob"}, {"amount", 50}}));
  ASSERT_TRUE(wait_quiet(rt, "accounts"));
  ASSERT_TRUE(wait_quiet(rt, "transfer_outcomes"));
  EXPECT_EQ(read_view(rt, "accounts").state["bob"]["balance"], 0);
  EXPECT_TRUE(read_view(rt, "transfer_outcomes").state.empty());
}

TEST_F(transfer_test, InvalidRequestsAreRefused) {
  runtime rt(options());
  add_transfers(rt);
  ASSERT_TRUE(rt.start());
  for (json d : {json{{"request", "r"}, {"from", "a"}, {"to", "b"}, {"amount", 0}},
                 json{{"request", "r"}, {"from", "a"}, {"to", "b"}, {"amount", 1.5}},
                 json{{"request", ""}, {"from", "a"}, {"to", "b"}, {"amount", 1}},
                 json{{"request", "r"}, {"from", "a"}, {"amount", 1}}, json("r")}) {
    auto r = append_one(rt, transfers.request_type, "a", d);
    ASSERT_FALSE(r) << d;
    EXPECT_EQ(r.error().code(), errc::invalid_event);
  }
  auto r = append_one(rt, transfers.open_type, "a", {{"balance", -1}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_event);
}

TEST_F(transfer_test, TwentyClientsMakeAThousandConflictingTransfers) {
  constexpr int clients = 20, per_client = 50, accounts = 10;
  runtime rt(options());
  add_transfers(rt);
  ASSERT_TRUE(rt.start());
  for (int i = 0; i < accounts; ++i)
    ASSERT_TRUE(append_sync(rt, open_account("acct" + std::to_string(i), 100)));
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(static_cast<unsigned>(c));
      for (int i = 0; i < per_client; ++i) {
        if (c == 0 && i == per_client / 3) {  // two accounts close on the way
          if (!append_sync(rt, close_account("acct8"))) ++bad;
          if (!append_sync(rt, close_account("acct9"))) ++bad;
        }
        std::string request = "c" + std::to_string(c) + "-" + std::to_string(i);
        std::string from = "acct" + std::to_string(rng() % accounts);
        std::string to = rng() % 20 == 0 ? "ghost" : "acct" + std::to_string(rng() % accounts);
        auto r = transfer_request(request, from, to, 1 + rng() % 60);
        for (int attempt = 0; attempt < (rng() % 4 == 0 ? 2 : 1); ++attempt)
          if (!append_sync(rt, r)) ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad, 0);
  ASSERT_TRUE(wait_quiet(rt, "accounts"));
  ASSERT_TRUE(wait_quiet(rt, "transfer_outcomes"));
  auto a = audit_transfers(rt);
  EXPECT_EQ(a.problem, "");
  EXPECT_EQ(a.requests.size(), size_t{clients * per_client});
  EXPECT_EQ(a.finals["credited"] + a.finals["refunded"] + a.finals["rejected"],
            clients * per_client);
  EXPECT_GT(a.finals["credited"], 0);  // every path was taken
  EXPECT_GT(a.finals["refunded"], 0);
  EXPECT_GT(a.finals["rejected"], 0);
  EXPECT_EQ(a.opened, 100 * accounts);
  EXPECT_EQ(read_view(rt, "transfer_outcomes").state.size(), size_t{clients * per_client});
}

}  // namespace
}  // namespace derive::testing
