// SIGKILL during an automatic compaction (actors/reclaimer.hpp): the child's
// reclaimer compacts the views' environment and dies at the crash point
// after the rename, before the reopen (`erasure_compaction_renamed`, which
// every online compaction passes). The data directory opens again with
// every view and the log as they were, and the views go on.

#include <sys/stat.h>

#include <thread>

#include "tests/actors/reclaim_views.hpp"
#include "tests/common/child_process.hpp"

namespace derive::testing {
namespace {

using namespace std::chrono_literals;
using namespace reclaim;

[[noreturn]] void child_main(const std::string& dir) {
  ::setenv("DERIVE_CRASH_POINT", "erasure_compaction_renamed", 1);
  runtime rt(options(dir, true));
  for (auto& v : views()) rt.add_view(v);
  if (!rt.start()) ::_exit(3);
  if (!fill_and_trim(rt)) ::_exit(3);
  std::this_thread::sleep_for(20s);  // the reclaimer kills the process before
  ::_exit(4);
}

TEST(reclaim_kill_test, AKillDuringAnAutomaticCompactionLeavesAUsableDataDirectory) {
  temp_dir dir;
  auto child = child_process::fork([&](int) { child_main(dir.path()); });
  ASSERT_TRUE(child.started());
  int wstatus = child.wait();
  ASSERT_TRUE(child_process::killed(wstatus))
      << "the child did not die at the compaction (exit code " << WEXITSTATUS(wstatus) << ")";
  struct stat st;
  EXPECT_NE(::stat(dir.sub("views/data.mdb.compact").c_str(), &st), 0) << "not renamed";

  runtime rt(options(dir.path(), false));
  for (auto& v : views()) rt.add_view(v);
  ASSERT_TRUE(rt.start());
  ASSERT_EQ(rt.head(), 2u);
  ASSERT_TRUE(wait_sync(rt, "small", 2));
  auto big = read_view(rt, "big");
  auto small = read_view(rt, "small");
  EXPECT_EQ(big.offset, 2u);
  EXPECT_EQ(big.state.size(), static_cast<size_t>(kept));
  EXPECT_EQ(small.state.size(), static_cast<size_t>(kept));
  for (auto& [k, v] : small.state) EXPECT_EQ(v, 500) << k;
  ASSERT_TRUE(append_one(rt, "fill", "b"));
  ASSERT_TRUE(wait_sync(rt, "small", rt.head()));
  EXPECT_EQ(read_view(rt, "small").state.size(), static_cast<size_t>(keys));
}

}  // namespace
}  // namespace derive::testing
