// 100,000 random events through three views, one derived from another: at
// several moments during the run and at the end, each view equals a
// recomputation from scratch at the same offset.

#include <atomic>
#include <condition_variable>
#include <thread>

#include "tests/actors/random_views.hpp"
#include "tests/actors/views_fixture.hpp"

namespace derive::testing {
namespace {

constexpr uint64_t total_events = 100'000;

class random_events_test : public runtime_fixture {
 protected:
  // Appends `total` random events in requests of 1..40 events, with up to
  // 64 requests in flight (so that the sequencer forms groups).
  void append_random(uint64_t total, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> size(1, 40);
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0;
    uint64_t sent = 0;
    std::atomic<uint64_t> failures{0};
    while (sent < total) {
      append_request r;
      int n = static_cast<int>(std::min<uint64_t>(size(rng), total - sent));
      for (int i = 0; i < n; ++i) r.events.push_back(random_event(rng));
      sent += n;
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return in_flight < 64; });
      ++in_flight;
      lock.unlock();
      rt().append(std::move(r), [&](result<append_outcome> out) {
        if (!out) ++failures;
        std::lock_guard<std::mutex> guard(mu);
        --in_flight;
        cv.notify_all();
      });
    }
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return in_flight == 0; });
    EXPECT_EQ(failures.load(), 0u);
  }
};

TEST_F(random_events_test, EveryViewEqualsARecomputationAtItsOffset) {
  ASSERT_TRUE(start(random_views()));
  std::atomic<bool> done{false};
  std::vector<std::string> problems;
  std::thread checker([&] {
    // While events flow: snapshots at whatever offsets the views are at.
    while (!done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
      if (auto p = verify_random_views(rt()); !p.empty()) problems.push_back(p);
    }
  });
  append_random(total_events, 42);
  done = true;
  checker.join();
  EXPECT_EQ(rt().head(), total_events);
  for (const char* name : {"counter", "latest", "buckets"})
    ASSERT_TRUE(wait_sync(rt(), name, total_events, std::chrono::seconds(60))) << name;
  EXPECT_EQ(verify_random_views(rt()), "");
  EXPECT_TRUE(problems.empty()) << problems.front();
  auto m = rt().metrics();
  EXPECT_LT(m.append_commits, m.append_requests);  // group commit formed groups
}

}  // namespace
}  // namespace derive::testing
