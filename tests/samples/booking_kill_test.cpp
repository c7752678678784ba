// The booking binary under SIGKILL: 50 HTTP clients race for the same 20
// seats (POST /v1/events, the request id as Idempotency-Key, some clicks
// retried) while the server process is killed with SIGKILL and restarted 10
// times. A client whose request got no answer reconnects to the new server
// and sends the same request with the same key until it is acknowledged
// (201, or 200 when it had reached the log before the kill). At the end the
// server stops on SIGTERM and the test replays its data: every acknowledged
// request is in the log exactly once with exactly one outcome, each seat has
// the one holder the first claim in log order gives, the outcomes add up to
// the requests and the availability view agrees.

#include <atomic>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "booking/booking_views.hpp"
#include "tests/actors/claims_util.hpp"
#include "tests/common/child_process.hpp"
#include "tests/web/web_client.hpp"

#ifndef BOOKING_BINARY
#error "BOOKING_BINARY: the path of the booking sample's binary"
#endif

namespace derive::testing {
namespace {

constexpr int clients = 50, seats = 20, kills = 10, min_per_client = 10;

// Starts the binary on a free port; the port, or 0 when it did not start.
uint16_t start_booking(std::optional<child_process>& server, const std::string& data) {
  server.emplace(child_process::exec({BOOKING_BINARY, "--port=0", "--data=" + data}));
  const std::string banner = "listening on http://127.0.0.1:";
  while (auto line = server->read_line(std::chrono::seconds(60))) {
    if (auto at = line->find(banner); at != std::string::npos)
      return static_cast<uint16_t>(std::stoi(line->substr(at + banner.size())));
  }
  return 0;
}

class booking_client {
 public:
  booking_client(const std::atomic<uint16_t>& port, std::atomic<int>& interrupted)
      : port_(port), interrupted_(interrupted) {}

  // Sends the request until the server acknowledges it (status 201 or 200),
  // through kills and restarts; the status, or 0 when none came in a minute.
  int send(const json& body, const std::string& request) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    for (bool first = true; std::chrono::steady_clock::now() < deadline; first = false) {
      if (!http_ || connected_to_ != port_) {
        connected_to_ = port_;
        http_.emplace(connected_to_);
      }
      auto r = http_->post("/v1/events", body.dump(), {{"Idempotency-Key", request}});
      if (r.status != 0) {
        if (!first) ++interrupted_;
        return r.status;
      }
      http_.reset();  // the server is gone: wait for the next one
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return 0;
  }

 private:
  const std::atomic<uint16_t>& port_;
  std::atomic<int>& interrupted_;  // requests answered only after a retry
  uint16_t connected_to_ = 0;
  std::optional<webtest::http_connection> http_;
};

TEST(booking_kill_test, FiftyClientsRaceForTwentySeatsThroughTenSigkills) {
  temp_dir dir;
  std::optional<child_process> server;
  std::atomic<uint16_t> port{start_booking(server, dir.path())};
  ASSERT_NE(port, 0) << "the booking binary did not start";
  std::atomic<bool> kills_done{false};
  std::atomic<int> acknowledged{0}, bad{0}, interrupted{0};
  std::mutex mu;
  std::set<std::string> acked;  // request ids
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(static_cast<unsigned>(c));
      booking_client client(port, interrupted);
      std::string me = "user" + std::to_string(c);
      for (int i = 0; (i < min_per_client || !kills_done) && bad == 0; ++i) {
        std::string request = me + "-" + std::to_string(i);
        bool claim = rng() % 5 != 0;
        json body = {{"type", claim ? "seat.claim" : "seat.release"},
                     {"key", "A" + std::to_string(1 + rng() % seats)},
                     {"data", {{"request", request}, {"by", me}}}};
        int status = client.send(body, request);
        if (status != 201 && status != 200) {
          ADD_FAILURE() << request << ": status " << status;
          ++bad;
          return;
        }
        if (rng() % 4 == 0 && client.send(body, request) != 200) ++bad;  // a retried click
        std::lock_guard lock(mu);
        acked.insert(request);
        ++acknowledged;
      }
    });
  }
  std::mt19937_64 rng(3);
  for (int k = 0; k < kills && bad == 0; ++k) {
    // Killed while requests flow: after some acknowledgements, at a random moment.
    for (int seen = acknowledged; acknowledged < seen + 20 && bad == 0;)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 300));
    EXPECT_TRUE(child_process::killed(server->kill())) << "kill " << k;
    port = start_booking(server, dir.path());
    if (port == 0) {
      ADD_FAILURE() << "the booking binary did not restart after kill " << k;
      ++bad;  // the clients give up
    }
  }
  kills_done = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad, 0);
  EXPECT_GT(interrupted, 0) << "no kill interrupted a request: the test checked little";
  std::cout << acked.size() << " requests acknowledged, " << interrupted
            << " interrupted by a kill and sent again\n";
  int wstatus = server->terminate();
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "no clean stop on SIGTERM";

  runtime_options o;
  o.data_dir = dir.path();
  runtime rt(o);
  booking::install(rt);
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(wait_quiet(rt, "seats"));
  ASSERT_TRUE(wait_quiet(rt, "outcomes"));
  ASSERT_TRUE(wait_quiet(rt, "availability"));
  auto a = audit_claims(rt);
  EXPECT_EQ(a.problem, "");
  EXPECT_GE(acked.size(), size_t{clients * min_per_client});
  EXPECT_EQ(a.requests, acked);  // each acknowledged request in the log, and nothing else
  EXPECT_EQ(a.outcomes, acked.size());
  EXPECT_EQ(read_view(rt, "outcomes").state.size(), acked.size());
  auto avail = read_view(rt, "availability").state;
  EXPECT_EQ(avail["taken"], json(a.holders.size()));
  EXPECT_EQ(avail["free"], json(booking::seat_count - static_cast<int>(a.holders.size())));
}

}  // namespace
}  // namespace derive::testing
