// Crashes at chosen points of the write path (core/crash_point.hpp): a child
// runs the runtime with DERIVE_CRASH_POINT set, appends concurrently and
// reports every acknowledged append; it is killed with SIGKILL at the point.
// Where the point leaves a commit written but not flushed, the test then also
// simulates what a power loss does to it: the newest meta page of that
// environment (written, never synced) is lost, so LMDB falls back to the one
// before. After reopening:
//  - the child reached the point (it died by SIGKILL, not by itself),
//  - every acknowledged append is present, offsets are gap-free,
//  - no offset the child saw as the head is missing,
//  - every view equals a recomputation from the log, each event counted once.

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "tests/actors/random_views.hpp"
#include "tests/actors/views_fixture.hpp"
#include "tests/common/child_process.hpp"

namespace derive::testing {
namespace {

runtime_options crash_options(const std::string& dir) {
  runtime_options o;
  o.data_dir = dir;
  o.storage.map_size = uint64_t{1} << 30;
  o.views_storage.map_size = uint64_t{1} << 30;
  o.catch_up_batch = 500;
  o.live_batch = 16;
  return o;
}

// What the child reports per acknowledged append.
struct ack {
  uint64_t first = 0;
  uint64_t count = 0;
  uint64_t head_seen = 0;  // rt.head() when the outcome arrived
};

std::string event_key(uint64_t request, uint64_t i) {
  return "r" + std::to_string(request) + "." + std::to_string(i);
}

// The child: appends (16 in flight) until the crash point kills it.
[[noreturn]] void child_main(const std::string& dir, const std::string& point, int fd,
                             uint64_t seed) {
  ::setenv("DERIVE_CRASH_POINT", point.c_str(), 1);
  runtime rt(crash_options(dir));
  for (auto& v : random_views()) rt.add_view(std::move(v));
  if (!rt.start()) ::_exit(3);
  std::mt19937_64 rng(seed);
  std::atomic<int> in_flight{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (uint64_t request = seed % 1'000'000 * 1000;; ++request) {
    if (std::chrono::steady_clock::now() > deadline) ::_exit(4);  // never reached the point
    if (in_flight >= 16) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      continue;
    }
    append_request r;
    for (uint64_t i = 0, k = 1 + rng() % 8; i < k; ++i) {
      auto e = random_event(rng);
      e.subject = event_key(request, i);  // names the request, checked after the crash
      r.events.push_back(std::move(e));
    }
    r.idempotency_key = "req-" + std::to_string(request);
    ++in_flight;
    rt.append(std::move(r), [&rt, &in_flight, fd](result<append_outcome> out) {
      if (out) {
        ack a{out->first_offset, out->count, rt.head()};
        [[maybe_unused]] auto n = ::write(fd, &a, sizeof a);
      }
      --in_flight;
    });
  }
}

// Makes the newest meta page of the LMDB file `path` lose to the other one,
// as if its (unsynced) write never reached the disk. False when the file does
// not look like LMDB's.
bool lose_newest_meta(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0) return false;
  // MDB_meta after the 16-byte page header: magic (4), version (4), address
  // (8), mapsize (8), two MDB_db (48 each), last_pg (8), txnid (8).
  constexpr off_t magic_at = 16, txnid_at = 16 + 4 + 4 + 8 + 8 + 96 + 8;
  uint32_t magic = 0;
  uint32_t page = 4096;  // the first meta says the page size in its free DB's md_pad
  bool ok = ::pread(fd, &magic, 4, magic_at) == 4 && magic == 0xBEEFC0DE &&
            ::pread(fd, &page, 4, 16 + 4 + 4 + 8 + 8) == 4;
  uint64_t txn[2] = {0, 0};
  ok = ok && ::pread(fd, &txn[0], 8, txnid_at) == 8 &&
       ::pread(fd, &txn[1], 8, off_t(page) + txnid_at) == 8;
  if (ok && txn[0] != txn[1]) {
    int newest = txn[1] > txn[0] ? 1 : 0;
    uint64_t older = txn[1 - newest] > 0 ? txn[1 - newest] - 1 : 0;
    ok = ::pwrite(fd, &older, 8, off_t(newest) * page + txnid_at) == 8;
  }
  ::close(fd);
  return ok;
}

class crash_points_test : public ::testing::TestWithParam<const char*> {
 protected:
  // Runs a child that dies at the `hit`-th passage of the point; collects acks.
  void crash_at(const std::string& point, uint64_t seed) {
    auto child = child_process::fork([&](int fd) { child_main(dir_.path(), point, fd, seed); });
    ASSERT_TRUE(child.started());
    ack a;
    while (child.read_record(a)) acks_.push_back(a);
    int wstatus = child.wait();
    ASSERT_TRUE(child_process::killed(wstatus))
        << "the child did not die at " << point << " (exit code " << WEXITSTATUS(wstatus) << ")";
  }

  void verify() {
    runtime rt(crash_options(dir_.path()));
    for (auto& v : random_views()) rt.add_view(std::move(v));
    ASSERT_TRUE(rt.start());
    const uint64_t head = rt.head();
    auto events = std::make_optional<std::vector<event>>();
    while (events->size() < head) {
      auto page = rt.read_log(events->size() + 1, 1000);
      ASSERT_TRUE(page && !page->empty()) << "the log ends before its head";
      events->insert(events->end(), page->begin(), page->end());
    }
    ASSERT_EQ(events->size(), head);
    for (uint64_t i = 0; i < head; ++i) ASSERT_EQ((*events)[i].offset, i + 1) << "a gap";
    for (const auto& a : acks_) {
      ASSERT_LE(a.first + a.count - 1, head) << "acknowledged append at " << a.first << " lost";
      ASSERT_LE(a.head_seen, head) << "offset " << a.head_seen << " was visible, now gone";
      // The events at the acknowledged offsets are that request's, whole.
      const auto& first = (*events)[a.first - 1].subject;
      const auto request = first.substr(0, first.find('.'));
      for (uint64_t i = 0; i < a.count; ++i)
        ASSERT_EQ((*events)[a.first - 1 + i].subject, request + "." + std::to_string(i));
    }
    for (const char* name : {"counter", "latest", "buckets"})
      ASSERT_TRUE(wait_sync(rt, name, head, std::chrono::seconds(60))) << name;
    EXPECT_EQ(verify_random_views(rt), "");
    auto total = read_view(rt, "counter").state["_total"];
    EXPECT_EQ(total, head == 0 ? json() : json(head)) << "an event counted twice or never";
  }

  temp_dir dir_;
  std::vector<ack> acks_;
};

TEST_P(crash_points_test, AcknowledgedAppendsAndViewsSurvive) {
  const std::string point = GetParam();
  // Unflushed at these points: the log's newest commit (and always the views'
  // newest commit) may be lost to a power loss.
  const bool log_meta_unsynced = point == "before_log_commit_unsynced" ||
                                 point == "after_log_commit_before_sync" ||
                                 point == "before_log_sync";
  std::mt19937_64 rng(std::hash<std::string>{}(point));
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const uint64_t hit = 5 + rng() % 60;
    ASSERT_NO_FATAL_FAILURE(crash_at(point + ":" + std::to_string(hit), rng()));
    if (round % 2 == 1) {  // a power loss, too
      ASSERT_TRUE(lose_newest_meta(dir_.sub("views/data.mdb")));
      if (log_meta_unsynced) {
        ASSERT_TRUE(lose_newest_meta(dir_.sub("data.mdb")));
      }
    }
    ASSERT_NO_FATAL_FAILURE(verify());
  }
  EXPECT_FALSE(acks_.empty()) << "nothing was acknowledged: the test checked little";
}

INSTANTIATE_TEST_SUITE_P(points, crash_points_test,
                         ::testing::Values("before_log_commit_unsynced",
                                           "after_log_commit_before_sync", "before_log_sync",
                                           "after_log_sync", "after_log_sync_before_view_commit",
                                           "after_view_commit"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace derive::testing
