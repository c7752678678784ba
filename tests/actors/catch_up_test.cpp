// Catch-up transactions are bounded by bytes and by time, and a stop during a
// long catch-up is prompt and exact: the view commits what it applied, and a
// restart resumes after it, applying no input twice and skipping none.

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/actors/views_fixture.hpp"

namespace derive::testing {
namespace {

using namespace std::chrono_literals;

// Counts the events it applied ("n") and records one key per event
// ("e/<offset>"), taking `delay` per event. Applied exactly once per event iff
// n == offset == count("e/").
view_def tally_view(std::chrono::microseconds delay = 0us, size_t value_bytes = 0) {
  return view_def("tally").from_log().apply([delay, value_bytes](const event& e, view_txn& tx) {
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    tx.put("n", tx.get("n").value_or(0).get<int64_t>() + 1);
    tx.put("e/" + std::to_string(e.offset), std::string(value_bytes, 'x'));
  });
}

class catch_up_test : public runtime_fixture {
 protected:
  // Appends `n` events in requests of 100, with a runtime that has no slow view.
  void append_backlog(uint64_t n) {
    ASSERT_TRUE(start({counts_view()}));
    for (uint64_t done = 0; done < n; done += 100) {
      std::vector<event_input> events;
      for (uint64_t i = done; i < std::min(n, done + 100); ++i) events.push_back(make_event("t", "k"));
      ASSERT_TRUE(append_sync(rt(), make_request(std::move(events))));
    }
    rt().stop();
  }
  // The view is exactly the recomputation of the first `offset` events.
  void expect_exact(uint64_t offset) {
    auto snap = rt().snapshot("tally");
    ASSERT_TRUE(snap);
    EXPECT_EQ(snap->offset(), offset);
    auto n = snap->get("n").value();
    EXPECT_EQ(n ? json::parse(*n).get<uint64_t>() : 0u, offset);
    EXPECT_EQ(snap->count("e/").value(), offset);
    if (offset > 0) {
      EXPECT_TRUE(snap->get("e/" + std::to_string(offset)).value());
    }
    EXPECT_FALSE(snap->get("e/" + std::to_string(offset + 1)).value());
  }
  view_metrics tally_metrics() {
    for (auto& v : rt().metrics().views)
      if (v.name == "tally") return v;
    ADD_FAILURE() << "no metrics for tally";
    return {};
  }
};

TEST_F(catch_up_test, StopDuringALongCatchUpIsPromptAndARestartResumesExactly) {
  append_backlog(4000);
  // 4,000 events x 2 ms: 8 s of catch-up, far longer than the stop may take.
  ASSERT_TRUE(start({tally_view(2ms)}));
  std::this_thread::sleep_for(300ms);
  auto before = std::chrono::steady_clock::now();
  rt().stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 10s);  // generous: ~one input + commit

  ASSERT_TRUE(start({tally_view()}));  // the same view, fast now
  uint64_t stopped_at = rt().view("tally")->offset;
  EXPECT_LT(stopped_at, 4000u);  // the stop interrupted the catch-up
  expect_exact(stopped_at);      // a committed, consistent state
  ASSERT_TRUE(wait_sync(rt(), "tally", 4000));
  expect_exact(4000);  // nothing applied twice, nothing skipped
}

TEST_F(catch_up_test, ABatchEndsWhenItHoldsCatchUpBytes) {
  append_backlog(2000);
  auto o = options();
  o.catch_up_bytes = 64 << 10;
  ASSERT_TRUE(start_with(o, {tally_view(0us, 1000)}));
  ASSERT_TRUE(wait_sync(rt(), "tally", 2000));
  expect_exact(2000);
  // ~2 MB written at most ~64 KiB per transaction: dozens of commits, not one.
  EXPECT_GE(tally_metrics().commits, 2'000'000u / (64u << 10) / 2);
}

TEST_F(catch_up_test, ABatchEndsAfterCatchUpTime) {
  append_backlog(300);
  auto o = options();
  o.catch_up_time = 20ms;
  ASSERT_TRUE(start_with(o, {tally_view(1ms)}));  // >= 300 ms of work
  ASSERT_TRUE(wait_sync(rt(), "tally", 300));
  expect_exact(300);
  EXPECT_GE(tally_metrics().commits, 3u);
}

TEST_F(catch_up_test, MetricsCountBytesWrittenAndTheLargestValue) {
  ASSERT_TRUE(start({tally_view(0us, 1000)}));
  for (int i = 0; i < 10; ++i) append("t", "k");
  ASSERT_TRUE(wait_sync(rt(), "tally", 10));
  auto m = tally_metrics();
  EXPECT_EQ(m.applied, 10u);
  // Per event: "e/<offset>" -> 1,002 bytes of JSON text, and "n".
  EXPECT_GE(m.bytes_written, 10u * 1002u);
  EXPECT_LT(m.bytes_written, 10u * 1100u);
  EXPECT_EQ(m.largest_value, 1002u);
}

TEST_F(catch_up_test, ADerivedViewCatchesUpInSmallBatchesToTheSameState) {
  ASSERT_TRUE(start({docs_view(), live_tags_view()}));
  for (int i = 0; i < 300; ++i)
    append("doc.put", "d" + std::to_string(i % 50), json{{"tag", "t" + std::to_string(i % 7)}});
  ASSERT_TRUE(wait_sync(rt(), "live_tags", rt().head()));
  auto expected = read_view(rt(), "live_tags");
  rt().stop();
  auto o = options();
  o.catch_up_bytes = 1;  // one input per transaction
  ASSERT_TRUE(start_with(o, {docs_view(), live_tags_view(2)}));  // rebuild
  ASSERT_TRUE(wait_sync(rt(), "live_tags", rt().head()));
  EXPECT_EQ(read_view(rt(), "live_tags").state, expected.state);
}

TEST_F(catch_up_test, StartRefusesAnInvalidRetention) {
  changelog_retention_options keep;
  keep.state_fraction = -1;
  auto st = start({tally_view().changelog_retention(keep)});
  EXPECT_EQ(st.code(), errc::invalid_parameter);
  EXPECT_NE(st.message().find("state_fraction"), std::string::npos) << st.message();
}

TEST_F(catch_up_test, RetentionOptionsReachTheStore) {
  changelog_retention_options keep;
  keep.offsets = 0;
  keep.max_age = std::chrono::milliseconds(0);
  keep.max_bytes = 2000;
  keep.state_fraction = 0;
  ASSERT_TRUE(start({tally_view(0us, 100).changelog_retention(keep)}));
  for (int i = 0; i < 100; ++i) append("t", "k");
  ASSERT_TRUE(wait_sync(rt(), "tally", 100));
  auto page = rt().changes_since("tally", 0, 1000);
  ASSERT_TRUE(page);
  EXPECT_FALSE(page->served);  // ~12 KB written, at most ~2 KB kept
}

}  // namespace
}  // namespace derive::testing
