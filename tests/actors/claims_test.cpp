// Uniqueness through the log (include/derive/claims.hpp): 50 concurrent
// clients race for the same 20 seats; every seat has one holder (the first
// claim in log order), every request exactly one outcome.

#include <atomic>
#include <random>
#include <thread>

#include "tests/actors/claims_util.hpp"

namespace derive::testing {
namespace {

class claims_test : public ::testing::Test {
 protected:
  runtime_options options() {
    runtime_options o;
    o.data_dir = dir_.path();
    return o;
  }
  temp_dir dir_;
};

TEST_F(claims_test, FirstClaimInLogOrderWins) {
  runtime rt(options());
  add_seat_claims(rt);
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(append_sync(rt, seat_request(true, "A1", "r1", "ann")));
  ASSERT_TRUE(append_sync(rt, seat_request(true, "A1", "r2", "bob")));
  ASSERT_TRUE(append_sync(rt, seat_request(false, "A1", "r3", "bob")));
  ASSERT_TRUE(append_sync(rt, seat_request(false, "A1", "r4", "ann")));
  ASSERT_TRUE(append_sync(rt, seat_request(true, "A1", "r5", "bob")));
  ASSERT_TRUE(wait_quiet(rt, "seats"));
  ASSERT_TRUE(wait_quiet(rt, "outcomes"));
  auto outcomes = read_view(rt, "outcomes").state;
  EXPECT_EQ(outcomes["r1"]["result"], "granted");
  EXPECT_EQ(outcomes["r2"]["result"], "taken");
  EXPECT_EQ(outcomes["r2"]["holder"], "ann");
  EXPECT_EQ(outcomes["r3"]["result"], "not_holder");
  EXPECT_EQ(outcomes["r4"]["result"], "released");
  EXPECT_EQ(outcomes["r5"]["result"], "granted");
  EXPECT_EQ(outcomes["r5"]["resource"], "A1");
  auto seats = read_view(rt, "seats").state;
  EXPECT_EQ(seats["A1"], json({{"by", "bob"}, {"request", "r5"}}));
  EXPECT_EQ(audit_claims(rt).problem, "");
}

TEST_F(claims_test, ARetriedRequestHasOneEffectAndOneOutcome) {
  runtime rt(options());
  add_seat_claims(rt);
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(append_sync(rt, seat_request(true, "A1", "r1", "ann")));
  auto retry = append_sync(rt, seat_request(true, "A1", "r1", "ann"));
  ASSERT_TRUE(retry);
  EXPECT_TRUE(retry->replayed);
  // The same request id reaching the log twice (no idempotency key).
  auto twice = seat_request(true, "A1", "r1", "ann");
  twice.idempotency_key.clear();
  ASSERT_TRUE(append_sync(rt, twice));
  ASSERT_TRUE(wait_quiet(rt, "seats"));
  auto a = audit_claims(rt);
  EXPECT_EQ(a.problem, "");
  EXPECT_EQ(a.outcomes, 1u);
}

TEST_F(claims_test, AClaimWithoutRequestIdIsRefused) {
  runtime rt(options());
  add_seat_claims(rt);
  ASSERT_TRUE(rt.start());
  auto r = append_one(rt, "seat.claim", "A1", {{"by", "ann"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_event);
}

TEST_F(claims_test, FiftyClientsRaceForTwentySeats) {
  constexpr int clients = 50, per_client = 20, seats = 20;
  runtime rt(options());
  add_seat_claims(rt);
  ASSERT_TRUE(rt.start());
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(static_cast<unsigned>(c));
      std::string me = "user" + std::to_string(c);
      for (int i = 0; i < per_client; ++i) {
        bool claim = rng() % 4 != 0;
        std::string seat = "S" + std::to_string(rng() % seats);
        std::string request = me + "-" + std::to_string(i);
        if (!append_sync(rt, seat_request(claim, seat, request, me))) ++errors;
        if (rng() % 5 == 0 && !append_sync(rt, seat_request(claim, seat, request, me)))
          ++errors;  // a retried click
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors, 0);
  ASSERT_TRUE(wait_quiet(rt, "seats"));
  auto a = audit_claims(rt);
  EXPECT_EQ(a.problem, "");
  EXPECT_EQ(a.requests.size(), size_t{clients * per_client});
  EXPECT_EQ(a.outcomes, uint64_t{clients * per_client});
  EXPECT_FALSE(a.holders.empty());
  ASSERT_TRUE(wait_quiet(rt, "outcomes"));
  EXPECT_EQ(read_view(rt, "outcomes").state.size(), size_t{clients * per_client});
}

}  // namespace
}  // namespace derive::testing
