#pragma once
// The schedule of rounds the SIGKILL tests of views, processors, claims and
// transfers share (tests/common/child_process.hpp forks the children).

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "tests/common/child_process.hpp"

namespace derive::testing {

// Runs `rounds` children in turn on the same data, each forked to run
// `child(fd, round, seed)`, which recovers, checks, writes "ok" (or what
// is wrong) on `fd`, closes it, and then works until it is killed. Every
// third round (1, 4, 7, ...) is killed during its recovery, 5-65 ms after its
// start; the others once they reported, after `work` plus a random 0-300 ms.
// Every report must be "ok" and every child must die of the SIGKILL (gtest
// expectations); returns the number of reports checked.
inline int run_kill_rounds(int rounds, uint64_t seed, std::chrono::milliseconds work,
                           const std::function<void(int fd, int round, uint64_t seed)>& child) {
  std::mt19937_64 rng(seed);
  int verified = 0;
  for (int round = 0; round < rounds; ++round) {
    uint64_t child_seed = rng();
    auto c = child_process::fork([&](int fd) { child(fd, round, child_seed); });
    EXPECT_TRUE(c.started()) << "round " << round;
    if (!c.started()) return verified;
    if (round % 3 == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 60));
    } else {
      EXPECT_EQ(c.read_until_closed(std::chrono::seconds(90)), "ok") << "round " << round;
      ++verified;
      std::this_thread::sleep_for(work + std::chrono::milliseconds(rng() % 300));
    }
    EXPECT_TRUE(child_process::killed(c.kill())) << "round " << round;
  }
  return verified;
}

}  // namespace derive::testing
