// booking over HTTP: 50 concurrent clients race for the same 20 seats through
// the server (POST /v1/events with the request id as Idempotency-Key, some
// clicks retried): each seat ends with exactly one holder, the first claim in
// log order; every request has exactly one outcome; the outcomes add up to
// the requests; the availability view agrees.

#include <atomic>
#include <random>
#include <thread>

#include <derive/web/server.hpp>

#include "booking/booking_views.hpp"
#include "tests/actors/claims_util.hpp"
#include "tests/web/web_client.hpp"

namespace derive::testing {
namespace {

TEST(booking_race_test, FiftyClientsRaceForTwentySeats) {
  constexpr int clients = 50, per_client = 10;
  temp_dir dir;
  runtime_options o;
  o.data_dir = dir.path();
  runtime rt(o);
  booking::install(rt);
  ASSERT_TRUE(rt.start());
  web::server_options so;
  so.port = 0;
  web::server srv(rt, so);
  ASSERT_TRUE(srv.start());
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(static_cast<unsigned>(c));
      webtest::http_connection http(srv.port());
      std::string me = "user" + std::to_string(c);
      for (int i = 0; i < per_client; ++i) {
        std::string request = me + "-" + std::to_string(i);
        bool claim = rng() % 5 != 0;
        json body = {{"type", claim ? "seat.claim" : "seat.release"},
                     {"key", "A" + std::to_string(1 + rng() % 20)},
                     {"data", {{"request", request}, {"by", me}}}};
        for (int attempt = 0; attempt < (rng() % 4 == 0 ? 2 : 1); ++attempt) {
          auto r = http.post("/v1/events", body.dump(), {{"Idempotency-Key", request}});
          if (r.status != (attempt == 0 ? 201 : 200)) ++bad;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad, 0);
  ASSERT_TRUE(wait_quiet(rt, "seats"));
  ASSERT_TRUE(wait_quiet(rt, "availability"));
  auto a = audit_claims(rt);
  EXPECT_EQ(a.problem, "");
  EXPECT_EQ(a.requests.size(), size_t{clients * per_client});
  EXPECT_EQ(a.outcomes, uint64_t{clients * per_client});
  EXPECT_FALSE(a.holders.empty());
  auto avail = read_view(rt, "availability").state;
  EXPECT_EQ(avail["taken"], json(a.holders.size()));
  EXPECT_EQ(avail["free"], json(booking::seat_count - static_cast<int>(a.holders.size())));
  srv.stop();
}

TEST(booking_race_test, AnUnknownSeatIsRefused) {
  temp_dir dir;
  runtime_options o;
  o.data_dir = dir.path();
  runtime rt(o);
  booking::install(rt);
  ASSERT_TRUE(rt.start());
  auto r = append_one(rt, "seat.claim", "K1", {{"request", "r"}, {"by", "ann"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_event);
  EXPECT_TRUE(booking::is_seat("J20"));
  EXPECT_FALSE(booking::is_seat("A21"));
  EXPECT_FALSE(booking::is_seat("A0"));
}

}  // namespace
}  // namespace derive::testing
