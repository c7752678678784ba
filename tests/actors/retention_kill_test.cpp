// SIGKILL at each crash point of a retention sweep (docs/storage.md,
// "Retention", core/crash_point.hpp): a child fills a log with page views
// (a 1-hour rule) and orders (no rule), moves its test clock 2 hours on,
// sweeps with DERIVE_CRASH_POINT set and dies there. After a restart:
//  - the sweep completes by itself, with one receipt naming every page view,
//  - every view equals a recomputation from the redacted log,
//  - after the next start (compaction) no file holds the page views' bytes,
//  - the orders are untouched.

#include <atomic>
#include <fstream>
#include <future>
#include <iterator>
#include <thread>

#include "tests/actors/views_fixture.hpp"
#include "tests/common/child_process.hpp"

namespace derive::testing {
namespace {

using namespace std::chrono_literals;

constexpr int count = 60;  // page views, and orders
constexpr int64_t t0 = 1'700'000'000'000, hour = 3600 * 1000;
const std::string view_mark = "zqPAGEVIEWsecret";
std::atomic<int64_t> now{t0};

std::vector<view_def> views() {
  return {view_def("docs").from_log().apply([](const event& e, view_txn& tx) {
            if (e.type != retention_event_type) tx.put(e.key, json::parse(e.data));
          }),
          view_def("titles").from_view("docs").apply_change(
              [](const upstream_change& c, view_txn& tx) {
                if (c.value) tx.put(c.key, (*c.value)["title"]);
                else tx.erase(c.key);
              })};
}

runtime_options options(const std::string& dir) {
  runtime_options o;
  o.data_dir = dir;
  o.storage.map_size = uint64_t{1} << 30;
  o.views_storage.map_size = uint64_t{1} << 30;
  o.log.clock = [] { return now.load(); };
  o.retention = {{"page.view", std::chrono::hours(1)}};
  o.retention_interval = std::chrono::hours(24 * 1000);  // sweeps on demand
  return o;
}

result<retention_sweep> sweep_sync(runtime& rt) {
  std::promise<result<retention_sweep>> done;
  auto future = done.get_future();
  rt.sweep_retention([&done](result<retention_sweep> r) { done.set_value(std::move(r)); });
  return future.get();
}

// The child: fills the log, sweeps 2 hours later, then stops and starts
// again (the compaction at open); it must die at `point` on the way.
[[noreturn]] void child_main(const std::string& dir, const std::string& point) {
  ::setenv("DERIVE_CRASH_POINT", point.c_str(), 1);
  now = t0;  // the parent's clock may have moved on (an earlier test)
  {
    runtime rt(options(dir));
    for (auto& v : views()) rt.add_view(v);
    if (!rt.start()) ::_exit(3);
    if (!sweep_sync(rt)) ::_exit(3);  // the start's own sweep, with nothing expired
    for (int i = 0; i < count; ++i) {
      if (!append_sync(rt, make_request({make_event("page.view", "view-" + std::to_string(i),
                                                    json{{"title", view_mark}})},
                                        "view-key-" + std::to_string(i))))
        ::_exit(3);
      if (!append_sync(rt, make_request({make_event("order.placed", "order-" + std::to_string(i),
                                                    json{{"title", "order title"}})})))
        ::_exit(3);
    }
    if (!wait_sync(rt, "titles", rt.head(), 30s)) ::_exit(3);
    now = t0 + 2 * hour;
    (void)sweep_sync(rt);
  }
  runtime rt(options(dir));
  for (auto& v : views()) rt.add_view(v);
  (void)rt.start();
  ::_exit(4);  // never reached the point
}

std::vector<std::string> files_holding(const std::string& dir, const std::string& needle) {
  std::vector<std::string> hits;
  for (auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos) hits.push_back(entry.path().string());
  }
  return hits;
}

class retention_kill_test : public ::testing::TestWithParam<const char*> {
 protected:
  std::unique_ptr<runtime> start() {
    now = t0 + 2 * hour;
    auto rt = std::make_unique<runtime>(options(dir_.path()));
    for (auto& v : views()) rt->add_view(v);
    EXPECT_TRUE(rt->start());
    return rt;
  }

  // A sweep queues behind the resumed one, so once it returns that one is
  // complete; checks the log and the views.
  void verify_expired(runtime& rt) {
    auto again = sweep_sync(rt);
    ASSERT_TRUE(again) << again.error().to_string();
    auto log = whole_log(rt);
    size_t receipts = 0;
    for (const auto& e : log) {
      if (e.type != retention_event_type) continue;
      ++receipts;
      EXPECT_NE(e.data.find("\"redacted\":" + std::to_string(count)), std::string::npos) << e.data;
    }
    ASSERT_EQ(receipts, 1u) << "the sweep did not complete once";
    ASSERT_EQ(log.size(), 2u * count + 1);
    for (int i = 0; i < 3000 && !rt.snapshot("titles"); ++i) std::this_thread::sleep_for(10ms);
    ASSERT_TRUE(wait_sync(rt, "titles", rt.head(), 30s));
    memory_view docs;
    for (const auto& e : log) {
      EXPECT_EQ(e.to_json().find(view_mark), std::string::npos) << e.to_json();
      EXPECT_EQ(e.redacted, e.type == "page.view") << e.to_json();
      if (e.redacted || e.type == retention_event_type) continue;
      docs.apply(e.offset, [&](view_txn& tx) { tx.put(e.key, json::parse(e.data)); });
    }
    EXPECT_EQ(docs.state().size(), static_cast<size_t>(count));
    EXPECT_EQ(read_view(rt, "docs").state, docs.state());
    auto titles = read_view(rt, "titles").state;
    EXPECT_EQ(titles.size(), static_cast<size_t>(count));
    for (auto& [key, value] : titles) EXPECT_EQ(value, "order title") << key;
  }

  temp_dir dir_;
};

TEST_P(retention_kill_test, TheSweepCompletesAfterARestart) {
  const std::string point = GetParam();
  {
    auto child = child_process::fork([&](int) { child_main(dir_.path(), point); });
    ASSERT_TRUE(child.started());
    int wstatus = child.wait();
    ASSERT_TRUE(child_process::killed(wstatus))
        << "the child did not die at " << point << " (exit code " << WEXITSTATUS(wstatus) << ")";
  }
  {
    auto rt = start();
    ASSERT_NO_FATAL_FAILURE(verify_expired(*rt));
  }
  auto rt = start();  // the compaction at open
  for (auto& f : files_holding(dir_.path(), view_mark)) ADD_FAILURE() << f << " holds a page view";
  EXPECT_FALSE(files_holding(dir_.path(), "order title").empty());  // the scan can find
  ASSERT_NO_FATAL_FAILURE(verify_expired(*rt));
}

INSTANTIATE_TEST_SUITE_P(points, retention_kill_test,
                         ::testing::Values("retention_recorded", "retention_redacted",
                                           "erasure_generation_built", "erasure_cut_over",
                                           "retention_views_rebuilt",
                                           "retention_receipts_appended", "retention_finished",
                                           "erasure_compacted"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace derive::testing
