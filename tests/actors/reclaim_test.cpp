// Space reclamation at rest (actors/reclaimer.hpp, docs/storage.md, "Space
// reclamation"): a views environment left with many free pages (a view that
// writes many keys, then erases most of them) is compacted once the runtime
// is quiet: the file shrinks, every view's state and the log are the same
// before and after, and reads made meanwhile never fail. With the policy off
// nothing is compacted.

#include <sys/stat.h>

#include <atomic>
#include <thread>

#include "tests/actors/reclaim_views.hpp"

namespace derive::testing {
namespace {

using namespace std::chrono_literals;
using namespace reclaim;

uint64_t file_size(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

const storage_metrics* views_storage(const runtime_metrics& m) {
  for (const auto& s : m.storage)
    if (s.environment == "views") return &s;
  return nullptr;
}

TEST(reclaim_test, AViewsEnvironmentWithManyFreePagesShrinksOnceQuiet) {
  temp_dir dir;
  runtime rt(options(dir.path(), true));
  for (auto& v : views()) rt.add_view(v);
  ASSERT_TRUE(rt.start());
  const std::string file = dir.sub("views/data.mdb");

  // Reads throughout: none may fail, compaction or not.
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, failures{0};
  std::thread reader([&] {
    while (!done) {
      auto snap = rt.snapshot("small");
      if (!snap || !snap->range("", "", 10)) ++failures;
      ++reads;
    }
  });
  ASSERT_TRUE(fill_and_trim(rt));
  const auto big = read_view(rt, "big");
  const auto small = read_view(rt, "small");
  const auto log = whole_log(rt);
  ASSERT_EQ(big.state.size(), static_cast<size_t>(kept));
  ASSERT_EQ(small.state.size(), static_cast<size_t>(kept));

  // The free pages are counted (before the policy may have run).
  uint64_t largest = file_size(file);
  const storage_metrics* s = nullptr;
  runtime_metrics m;
  for (int i = 0; i < 400; ++i) {  // up to 20 s
    m = rt.metrics();
    s = views_storage(m);
    ASSERT_NE(s, nullptr);
    if (s->compactions > 0) break;
    largest = std::max(largest, s->file_bytes);
    std::this_thread::sleep_for(50ms);
  }
  done = true;
  reader.join();
  ASSERT_GT(s->compactions, 0u) << "never compacted: " << s->free_bytes << " of "
                                << s->file_bytes << " bytes free";
  EXPECT_GT(largest, 2u << 20);
  EXPECT_LT(file_size(file) * 2, largest) << "the file did not shrink";
  EXPECT_GT(s->bytes_reclaimed, largest / 2);
  EXPECT_LT(s->free_bytes, largest / 4);
  EXPECT_EQ(failures.load(), 0) << "of " << reads.load() << " reads";
  EXPECT_GT(reads.load(), 0);

  auto big_after = read_view(rt, "big");
  auto small_after = read_view(rt, "small");
  EXPECT_EQ(big_after.offset, big.offset);
  EXPECT_EQ(big_after.state, big.state);
  EXPECT_EQ(small_after.offset, small.offset);
  EXPECT_EQ(small_after.state, small.state);
  auto log_after = whole_log(rt);
  ASSERT_EQ(log_after.size(), log.size());
  for (size_t i = 0; i < log.size(); ++i) EXPECT_EQ(log_after[i].to_json(), log[i].to_json());

  // The views go on after the reopen: a new fill is applied and read back.
  ASSERT_TRUE(append_one(rt, "fill", "b"));
  ASSERT_TRUE(wait_sync(rt, "small", rt.head()));
  EXPECT_EQ(read_view(rt, "small").state.size(), static_cast<size_t>(keys));
  rt.stop();

  // And after a restart.
  runtime again(options(dir.path(), false));
  for (auto& v : views()) again.add_view(v);
  ASSERT_TRUE(again.start());
  EXPECT_EQ(read_view(again, "big").state.size(), static_cast<size_t>(keys));
}

// A snapshot held open keeps the compaction from starting: it gives up after
// a short wait (new transactions wait only that long) and is retried once
// the snapshot is gone.
TEST(reclaim_test, ASnapshotHeldOpenPutsTheCompactionOff) {
  temp_dir dir;
  runtime rt(options(dir.path(), true));
  for (auto& v : views()) rt.add_view(v);
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(fill_and_trim(rt));
  {
    auto held = rt.snapshot("big");
    ASSERT_TRUE(held);
    const auto until = std::chrono::steady_clock::now() + 1500ms;
    while (std::chrono::steady_clock::now() < until) {
      auto start = std::chrono::steady_clock::now();
      auto snap = rt.snapshot("small");  // never refused
      ASSERT_TRUE(snap);
      EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
      std::this_thread::sleep_for(20ms);
    }
    auto m = rt.metrics();
    EXPECT_EQ(views_storage(m)->compactions, 0u) << "compacted under an open snapshot";
    EXPECT_EQ(read_all(*held).size(), static_cast<size_t>(kept));
  }
  uint64_t compactions = 0;
  for (int i = 0; i < 400 && compactions == 0; ++i) {  // up to 20 s
    std::this_thread::sleep_for(50ms);
    auto m = rt.metrics();
    compactions = views_storage(m)->compactions;
  }
  EXPECT_GT(compactions, 0u) << "not retried once the snapshot ended";
  EXPECT_EQ(read_view(rt, "small").state.size(), static_cast<size_t>(kept));
}

TEST(reclaim_test, TurnedOffItNeverCompacts) {
  temp_dir dir;
  runtime rt(options(dir.path(), false));
  for (auto& v : views()) rt.add_view(v);
  ASSERT_TRUE(rt.start());
  ASSERT_TRUE(fill_and_trim(rt));
  std::this_thread::sleep_for(1500ms);  // five times the quiet time
  auto m = rt.metrics();
  auto* s = views_storage(m);
  ASSERT_NE(s, nullptr);
  EXPECT_GT(s->free_bytes, s->file_bytes / 2);  // would have been compacted
  EXPECT_EQ(s->compactions, 0u);
}

}  // namespace
}  // namespace derive::testing
