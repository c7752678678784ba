// Crash safety of the log: a child process appends batches in a loop and
// reports each acknowledged batch on a pipe; the parent kills it with SIGKILL
// at random moments, reopens the data directory and checks that
//  - every acknowledged event is present with exactly its content,
//  - offsets run from 1 to head without a gap,
//  - every batch is present whole or not at all,
//  - the idempotency key of every acknowledged batch is remembered.
// The child opens the environment only after fork (LMDB must not cross fork).

#include "core/append_check.hpp"
#include "core/log.hpp"

#include "core/append_check.hpp"
#include "tests/common/child_process.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

namespace derive {
namespace {

namespace fs = std::filesystem;
using testing::child_process;

// The content of the event at `offset` in the batch that starts at `first`
// and holds `count` events: the parent derives it again to verify.
event_input expected_event(uint64_t offset, uint64_t first, uint64_t count) {
  event_input e;
  e.type = "crash.test";
  e.key = "k" + std::to_string(offset);
  e.subject = offset % 3 == 0 ? "s" + std::to_string(offset % 7) : "";
  e.data = nlohmann::json{{"offset", offset},
                          {"first", first},
                          {"count", count},
                          {"pad", std::string(offset % 50, 'x')}}
               .dump();
  return e;
}

std::string batch_key(uint64_t first) { return "batch-" + std::to_string(first); }

struct ack {
  uint64_t first;
  uint64_t count;
};

// Runs in the child: appends forever, writing each acknowledged batch to `fd`.
[[noreturn]] void child_main(const std::string& dir, int fd, unsigned seed) {
  auto env = environment::open(dir);
  if (!env) _exit(10);
  auto log = event_log::open(**env);
  if (!log) _exit(11);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<uint64_t> size(1, 60);
  for (;;) {
    uint64_t first = (*log)->head() + 1;
    uint64_t count = size(rng);
    std::vector<event_input> events;
    for (uint64_t o = first; o < first + count; ++o) events.push_back(expected_event(o, first, count));
    auto r = (*log)->append(checked_append_access::make(
        std::move(events), batch_key(first),
        "fp-" + std::to_string(first) + "-" + std::to_string(count)));
    if (!r || r->first_offset != first) _exit(12);
    ack a{first, count};
    if (write(fd, &a, sizeof a) != static_cast<ssize_t>(sizeof a)) _exit(13);
  }
}

class log_crash_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/derive-log-crash-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Starts a child, lets it run `ms` milliseconds, kills it and collects its
  // acks. With `after_first_ack` the time starts when the child has
  // acknowledged its first batch (so that every run appends, however loaded
  // the machine); without, the kill may also hit the opening of the log.
  void run_and_kill(unsigned seed, int ms, bool after_first_ack) {
    auto child = child_process::fork([&](int fd) { child_main(dir_, fd, seed); });
    ASSERT_TRUE(child.started());
    ack a{};
    if (after_first_ack && child.read_record(a, std::chrono::seconds(10))) acks_.push_back(a);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    int wstatus = child.kill();
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "the child exited with " << WEXITSTATUS(wstatus);
    while (child.read_record(a)) acks_.push_back(a);
  }

  void verify() {
    auto env = environment::open(dir_);
    ASSERT_TRUE(env) << env.error().to_string();
    auto log = event_log::open(**env);
    ASSERT_TRUE(log) << log.error().to_string();
    uint64_t head = (*log)->head();
    auto events = (*log)->read(1, head + 1);
    ASSERT_TRUE(events) << events.error().to_string();
    ASSERT_EQ(events->size(), head);
    for (size_t i = 0; i < events->size(); ++i) verify_event((*events)[i], i + 1, head);
    for (const auto& a : acks_) {
      ASSERT_LE(a.first + a.count - 1, head) << "acknowledged batch " << a.first << " lost";
      auto known = (*log)->find_idempotency_key(batch_key(a.first));
      ASSERT_TRUE(known && known->has_value()) << "key of batch " << a.first << " lost";
      EXPECT_EQ((*known)->count, a.count);
    }
    ++verified_;
    last_head_ = head;
  }

  // Event `e` is the one expected at `offset`, and its whole batch is <= head.
  void verify_event(const event& e, uint64_t offset, uint64_t head) {
    ASSERT_EQ(e.offset, offset);
    auto data = nlohmann::json::parse(e.data);
    uint64_t first = data["first"], count = data["count"];
    ASSERT_LE(first, offset);
    ASSERT_LT(offset, first + count);
    ASSERT_LE(first + count - 1, head) << "partial batch at " << first;
    auto want = expected_event(offset, first, count);
    ASSERT_EQ(e.type, want.type);
    ASSERT_EQ(e.key, want.key);
    ASSERT_EQ(e.subject, want.subject);
    ASSERT_EQ(e.data, want.data);
  }

  std::string dir_;
  std::vector<ack> acks_;
  int verified_ = 0;
  uint64_t last_head_ = 0;
};

TEST_F(log_crash_test, acknowledged_batches_survive_sigkill_whole) {
  unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> sleep_ms(5, 80);
  const int cycles = 24;
  for (int i = 0; i < cycles; ++i) {
    ASSERT_NO_FATAL_FAILURE(run_and_kill(rng(), sleep_ms(rng), i % 2 == 1));
    ASSERT_NO_FATAL_FAILURE(verify());
  }
  EXPECT_EQ(verified_, cycles);
  EXPECT_GT(acks_.size(), 0u) << "the children never got to append";
  std::printf("%d kills, %zu acknowledged batches, head %llu\n", cycles, acks_.size(),
              static_cast<unsigned long long>(last_head_));
}

}  // namespace
}  // namespace derive
