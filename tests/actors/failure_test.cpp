// Supervision: a view whose code throws stops alone, with its state committed
// up to the event before; appends, reads and the other views go on; it can be
// restarted after a fix, in process or after a reopen. Under the dead-letter
// policy the failing event is skipped and listed.

#include <atomic>
#include <thread>

#include "tests/actors/views_fixture.hpp"

namespace derive::testing {
namespace {

// Counts events, in the state ("total") and in private state ("events");
// while `broken` is set, throws on events whose data has "boom": true — after
// writing, so that partial writes must be discarded.
view_def fragile_view(std::shared_ptr<std::atomic<bool>> broken,
                      failure_policy policy = failure_policy::stop) {
  return view_def("fragile")
      .from_log()
      .on_failure(policy)
      .apply([broken](const event& e, view_txn& tx) {
        tx.put("total", tx.get("total").value_or(0).get<int64_t>() + 1);
        tx.put_private("events", tx.get_private("events").value_or(0).get<int64_t>() + 1);
        auto data = json::parse(e.data);
        if (*broken && data.is_object() && data.value("boom", false))
          throw std::runtime_error("boom at " + e.key);
      });
}

class failure_test : public runtime_fixture {
 protected:
  std::shared_ptr<std::atomic<bool>> broken_ = std::make_shared<std::atomic<bool>>(true);

  // Appends `good` plain events, one "boom" event, then `good` more; returns
  // the boom event's offset.
  uint64_t append_with_boom(int good) {
    for (int i = 0; i < good; ++i) append("a", "k" + std::to_string(i));
    uint64_t boom = append("a", "bad", {{"boom", true}});
    for (int i = 0; i < good; ++i) append("a", "k" + std::to_string(i));
    return boom;
  }
  // Waits until `view` reports failed (or 10 s).
  view_info wait_failed(const std::string& view) {
    for (int i = 0; i < 1000; ++i) {
      auto v = rt().view(view);
      if (v && v->status == view_status::failed) return *v;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return *rt().view(view);
  }
};

TEST_F(failure_test, AThrowingViewFailsAtTheEventBefore) {
  ASSERT_TRUE(start({fragile_view(broken_), counts_view()}));
  uint64_t boom = append_with_boom(5);
  auto v = wait_failed("fragile");
  EXPECT_EQ(v.status, view_status::failed);
  EXPECT_EQ(v.offset, boom - 1);
  EXPECT_EQ(v.failed_offset, boom);
  EXPECT_NE(v.error.find("boom at bad"), std::string::npos);
  EXPECT_EQ(get("fragile", "total"), json(boom - 1));  // the failing event's writes are gone
  EXPECT_EQ(get_private("fragile", "events"), json(boom - 1));  // its private writes too
}

TEST_F(failure_test, TheOtherViewsAndAppendsGoOn) {
  ASSERT_TRUE(start({fragile_view(broken_), counts_view(), docs_view(), tags_view()}));
  append_with_boom(3);
  wait_failed("fragile");
  uint64_t later = append("doc.put", "d1", {{"tag", "t"}});
  EXPECT_GT(later, 0u);
  EXPECT_TRUE(wait_sync(rt(), "counts", later));
  EXPECT_TRUE(wait_sync(rt(), "tags", later));
  EXPECT_EQ(get("counts", "_total"), json(later));
}

TEST_F(failure_test, AFailedViewDoesNotReachLaterOffsets) {
  ASSERT_TRUE(start({fragile_view(broken_)}));
  uint64_t boom = append_with_boom(2);
  wait_failed("fragile");
  EXPECT_EQ(wait_sync(rt(), "fragile", boom, std::chrono::milliseconds(100)).code(),
            errc::not_caught_up);
}

TEST_F(failure_test, RestartAfterAFixResumesAtTheFailedEvent) {
  ASSERT_TRUE(start({fragile_view(broken_)}));
  append_with_boom(4);
  wait_failed("fragile");
  *broken_ = false;
  ASSERT_TRUE(rt().restart_view("fragile"));
  ASSERT_TRUE(wait_sync(rt(), "fragile", rt().head()));
  EXPECT_EQ(rt().view("fragile")->status, view_status::running);
  EXPECT_EQ(get("fragile", "total"), json(rt().head()));  // each event exactly once
  EXPECT_EQ(get_private("fragile", "events"), json(rt().head()));
}

TEST_F(failure_test, TheFailureSurvivesAReopenUntilRestart) {
  ASSERT_TRUE(start({fragile_view(broken_), counts_view()}));
  uint64_t boom = append_with_boom(3);
  wait_failed("fragile");
  auto fixed = std::make_shared<std::atomic<bool>>(false);
  ASSERT_TRUE(start({fragile_view(fixed), counts_view()}));
  auto v = rt().view("fragile");
  EXPECT_EQ(v->status, view_status::failed);
  EXPECT_EQ(v->failed_offset, boom);
  uint64_t more = append("a", "more");  // appends are acknowledged meanwhile
  EXPECT_EQ(more, rt().head());
  ASSERT_TRUE(rt().restart_view("fragile"));
  ASSERT_TRUE(wait_sync(rt(), "fragile", rt().head()));
  EXPECT_EQ(get("fragile", "total"), json(rt().head()));
  ASSERT_TRUE(start({fragile_view(fixed), counts_view()}));
  EXPECT_EQ(rt().view("fragile")->status, view_status::running);
}

TEST_F(failure_test, RestartingAHealthyViewChangesNothing) {
  ASSERT_TRUE(start({counts_view()}));
  EXPECT_TRUE(rt().restart_view("counts"));
  EXPECT_EQ(rt().restart_view("nope").code(), errc::unknown_view);
}

TEST_F(failure_test, TheDeadLetterPolicySkipsAndListsTheEvent) {
  ASSERT_TRUE(start({fragile_view(broken_, failure_policy::dead_letter)}));
  uint64_t boom = append_with_boom(3);
  ASSERT_TRUE(wait_sync(rt(), "fragile", rt().head()));
  EXPECT_EQ(rt().view("fragile")->status, view_status::running);
  EXPECT_EQ(get("fragile", "total"), json(rt().head() - 1));
  EXPECT_EQ(get_private("fragile", "events"), json(rt().head() - 1));
  auto dead = rt().dead_letters("fragile");
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].offset, boom);
  EXPECT_NE((*dead)[0].error.find("boom at bad"), std::string::npos);
}

TEST_F(failure_test, AFailingDerivedViewStopsAtTheUpstreamOffsetBefore) {
  auto picky = view_def("picky").from_view("docs").apply_change(
      [](const upstream_change& c, view_txn& tx) {
        if (c.key == "bad") throw std::runtime_error("bad document");
        tx.put(c.key, true);
      });
  ASSERT_TRUE(start({docs_view(), picky}));
  append("doc.put", "d1", {{"n", 1}});
  uint64_t bad = append("doc.put", "bad", {{"n", 2}});
  append("doc.put", "d2", {{"n", 3}});
  auto v = wait_failed("picky");
  EXPECT_EQ(v.offset, bad - 1);
  EXPECT_EQ(v.failed_offset, bad);
  EXPECT_EQ(get("picky", "d1"), json(true));
  EXPECT_FALSE(get("picky", "d2"));
}

}  // namespace
}  // namespace derive::testing
