// The runtime as an application sees it: start, append, views, reads,
// waiting, subscriptions, derived views, stop and reopen.

#include <signal.h>

#include <thread>

#include <derive/actor_handles.hpp>
#include <derive/signals.hpp>
#include "tests/actors/views_fixture.hpp"

namespace derive::testing {
namespace {

using namespace std::chrono_literals;

class runtime_test : public runtime_fixture {};

// --- start ---

TEST_F(runtime_test, StartsEmptyWithViewsAtOffsetZero) {
  ASSERT_TRUE(start({counts_view()}));
  EXPECT_EQ(rt().head(), 0u);
  auto v = rt().view("counts");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->offset, 0u);
  EXPECT_EQ(v->status, view_status::running);
}

TEST_F(runtime_test, ViewsAreStoppedBeforeStart) {
  runtime r(options());
  r.add_view(counts_view());
  auto v = r.view("counts");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->status, view_status::stopped);
}

TEST_F(runtime_test, StartRefusesTwoViewsWithOneName) {
  auto st = start({counts_view(), counts_view()});
  EXPECT_EQ(st.code(), errc::invalid_parameter);
}

TEST_F(runtime_test, StartRefusesAnUnknownUpstream) {
  auto st = start({tags_view()});  // reads "docs", which is not declared
  EXPECT_EQ(st.code(), errc::invalid_parameter);
  EXPECT_NE(st.message().find("docs"), std::string::npos);
}

TEST_F(runtime_test, StartRefusesACycle) {
  auto noop = [](const upstream_change&, view_txn&) {};
  auto st = start({view_def("a").from_view("b").apply_change(noop),
                   view_def("b").from_view("a").apply_change(noop)});
  EXPECT_EQ(st.code(), errc::invalid_parameter);
}

TEST_F(runtime_test, StartRefusesAViewWithoutApply) {
  EXPECT_EQ(start({view_def("empty").from_log()}).code(), errc::invalid_parameter);
}

// --- appends ---

TEST_F(runtime_test, AppendsGetConsecutiveOffsets) {
  ASSERT_TRUE(start({counts_view()}));
  EXPECT_EQ(append("a", "k"), 1u);
  auto two = append_sync(rt(), make_request({make_event("a", "k"), make_event("b", "k")}));
  ASSERT_TRUE(two);
  EXPECT_EQ(two->first_offset, 2u);
  EXPECT_EQ(two->count, 2u);
  EXPECT_EQ(rt().head(), 3u);
}

TEST_F(runtime_test, AnInvalidEventAppendsNothing) {
  ASSERT_TRUE(start({counts_view()}));
  auto r = append_one(rt(), "has space", "k");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_event);
  EXPECT_EQ(rt().head(), 0u);
}

TEST_F(runtime_test, AValidatorRefusesTheWholeRequest) {
  runtime r(options());
  r.add_view(counts_view());
  r.add_validator("doc.put", [](const event_input& e) {
    if (e.key.empty()) return status{errc::invalid_event, "key: doc.put needs a key"};
    return status::ok();
  });
  ASSERT_TRUE(r.start());
  auto out = append_sync(r, make_request({make_event("doc.put", "a"), make_event("doc.put", "")}));
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), errc::invalid_event);
  EXPECT_NE(out.error().message().find("events[1]"), std::string::npos);
  EXPECT_EQ(r.head(), 0u);
}

TEST_F(runtime_test, AnIdempotentRetryReplaysTheOutcome) {
  ASSERT_TRUE(start({counts_view()}));
  auto first = append_sync(rt(), make_request({make_event("a", "k")}, "key-1"));
  auto retry = append_sync(rt(), make_request({make_event("a", "k")}, "key-1"));
  ASSERT_TRUE(first);
  ASSERT_TRUE(retry);
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->first_offset, first->first_offset);
  EXPECT_EQ(rt().head(), 1u);
}

TEST_F(runtime_test, ConcurrentRequestsWithOneKeyAppendOnce) {
  ASSERT_TRUE(start({counts_view()}));
  std::vector<std::future<result<append_outcome>>> outcomes;
  for (int i = 0; i < 20; ++i) {
    auto done = std::make_shared<std::promise<result<append_outcome>>>();
    outcomes.push_back(done->get_future());
    rt().append(make_request({make_event("a", "k")}, "same"),
                [done](result<append_outcome> r) { done->set_value(std::move(r)); });
  }
  for (auto& f : outcomes) {
    auto r = f.get();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->first_offset, 1u);
  }
  EXPECT_EQ(rt().head(), 1u);
}

// --- views and reads ---

TEST_F(runtime_test, AViewAppliesEveryAppendedEvent) {
  ASSERT_TRUE(start({counts_view()}));
  append("a", "k");
  append("a", "k");
  append("b", "k");
  EXPECT_EQ(get_at_head("counts", "a"), json(2));
  EXPECT_EQ(get("counts", "b"), json(1));
  EXPECT_EQ(get("counts", "_total"), json(3));
}

TEST_F(runtime_test, ReadLogReturnsTheEvents) {
  ASSERT_TRUE(start({counts_view()}));
  append("a", "k1", {{"x", 1}});
  auto events = rt().read_log(1, 10);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].key, "k1");
  EXPECT_EQ(json::parse((*events)[0].data), json({{"x", 1}}));
}

TEST_F(runtime_test, ReadsOfAnUnknownViewFail) {
  ASSERT_TRUE(start({counts_view()}));
  EXPECT_EQ(rt().snapshot("nope").error().code(), errc::unknown_view);
  EXPECT_EQ(rt().view("nope").error().code(), errc::unknown_view);
  EXPECT_EQ(rt().changes_since("nope", 0, 10).error().code(), errc::unknown_view);
}

TEST_F(runtime_test, ANamedQueryAnswersWithTheSnapshotOffset) {
  auto def = counts_view().query("of", [](const view_snapshot& s, const query_params& p)
                                           -> result<json> {
    auto it = p.find("type");
    if (it == p.end()) return status{errc::invalid_parameter, "type is required"};
    auto v = s.get(it->second);
    if (!v) return v.error();
    return json{{"count", *v ? json::parse(**v) : json(0)}};
  });
  ASSERT_TRUE(start({def}));
  uint64_t at = append("a", "k");
  ASSERT_TRUE(wait_sync(rt(), "counts", at));
  auto out = rt().query("counts", "of", {{"type", "a"}});
  ASSERT_TRUE(out);
  EXPECT_EQ((*out)["count"], 1);
  EXPECT_EQ((*out)["offset"], at);
  EXPECT_EQ(rt().query("counts", "of", {}).error().code(), errc::invalid_parameter);
  EXPECT_EQ(rt().query("counts", "nope", {}).error().code(), errc::unknown_query);
}

TEST_F(runtime_test, TheChangelogHoldsEachOffsetsChanges) {
  ASSERT_TRUE(start({docs_view()}));
  append("doc.put", "d1", {{"tag", "x"}});
  uint64_t at = append("doc.delete", "d1");
  ASSERT_TRUE(wait_sync(rt(), "docs", at));
  auto page = rt().changes_since("docs", 0, 10);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[1].offset, at);
  EXPECT_FALSE(page->entries[1].changes[0].value.has_value());
}

// --- waiting (read-your-writes) ---

TEST_F(runtime_test, WaitForReturnsOnceTheViewCommittedTheOffset) {
  ASSERT_TRUE(start({counts_view()}));
  uint64_t at = append("a", "k");
  EXPECT_TRUE(wait_sync(rt(), "counts", at));
  EXPECT_GE(rt().view("counts")->offset, at);
}

TEST_F(runtime_test, WaitForAnOffsetNotReachedTimesOut) {
  ASSERT_TRUE(start({counts_view()}));
  auto st = wait_sync(rt(), "counts", 5, 50ms);
  EXPECT_EQ(st.code(), errc::not_caught_up);
}

TEST_F(runtime_test, WaitForIsWokenByALaterAppend) {
  ASSERT_TRUE(start({counts_view()}));
  std::promise<status> done;
  rt().wait_for("counts", 1, 20s, [&done](status s) { done.set_value(s); });
  append("a", "k");
  EXPECT_TRUE(done.get_future().get());
}

TEST_F(runtime_test, WaitForAnUnknownViewFails) {
  ASSERT_TRUE(start({counts_view()}));
  EXPECT_EQ(wait_sync(rt(), "nope", 1).code(), errc::unknown_view);
}

// --- derived views ---

TEST_F(runtime_test, ADerivedViewAppliesTheUpstreamChanges) {
  ASSERT_TRUE(start({docs_view(), tags_view()}));
  append("doc.put", "d1", {{"tag", "red"}});
  append("doc.put", "d2", {{"tag", "red"}});
  append("doc.put", "d1", {{"tag", "blue"}});
  EXPECT_EQ(get_at_head("tags", "tag:red"), json(1));
  EXPECT_EQ(get("tags", "tag:blue"), json(1));
  EXPECT_EQ(get("tags", "doc:d1"), json("blue"));
}

TEST_F(runtime_test, ADerivedViewReachesTheUpstreamOffsetWhenNothingChanged) {
  ASSERT_TRUE(start({docs_view(), tags_view()}));
  append("doc.put", "d1", {{"tag", "red"}});
  uint64_t last = append("other", "x");  // changes nothing in docs
  ASSERT_TRUE(wait_sync(rt(), "tags", last));
  EXPECT_EQ(rt().view("tags")->offset, last);
  EXPECT_EQ(rt().view("docs")->offset, last);
}

TEST_F(runtime_test, ADerivedViewMayBeDeclaredBeforeItsUpstream) {
  ASSERT_TRUE(start({tags_view(), docs_view()}));
  append("doc.put", "d1", {{"tag", "red"}});
  EXPECT_EQ(get_at_head("tags", "tag:red"), json(1));
}

TEST_F(runtime_test, ViewsChainThroughSeveralStages) {
  // docs -> tags -> tag_names: the names of the tags in use.
  auto names = view_def("tag_names").from_view("tags").apply_change(
      [](const upstream_change& c, view_txn& tx) {
        if (c.key.rfind("tag:", 0) != 0) return;
        if (c.value) tx.put(c.key.substr(4), true);
        else tx.erase(c.key.substr(4));
      });
  ASSERT_TRUE(start({docs_view(), tags_view(), names}));
  append("doc.put", "d1", {{"tag", "red"}});
  append("doc.put", "d2", {{"tag", "blue"}});
  uint64_t last = append("doc.delete", "d1");
  ASSERT_TRUE(wait_sync(rt(), "tag_names", last));
  EXPECT_EQ(get("tag_names", "blue"), json(true));
  EXPECT_FALSE(get("tag_names", "red"));
  EXPECT_EQ(rt().view("tag_names")->offset, last);
}

// --- private state ---

TEST_F(runtime_test, PrivateWritesAreCommittedButAreNotPartOfTheState) {
  ASSERT_TRUE(start({docs_view(), live_tags_view()}));
  append("doc.put", "d1", {{"tag", "red"}});
  append("doc.put", "d2", {{"tag", "red"}});
  uint64_t last = append("doc.put", "d1", {{"tag", "blue"}});
  ASSERT_TRUE(wait_sync(rt(), "live_tags", last));
  EXPECT_EQ(read_view(rt(), "live_tags").state,
            (state_map{{"tag:blue", json(1)}, {"tag:red", json(1)}}));
  EXPECT_EQ(get("live_tags", "doc:d1"), std::nullopt);
  EXPECT_EQ(get_private("live_tags", "doc:d1"), json("blue"));
  EXPECT_EQ(get_private("live_tags", "doc:d2"), json("red"));
}

TEST_F(runtime_test, PrivateWritesAreNeitherInTheChangelogNorPublished) {
  ASSERT_TRUE(start({docs_view(), live_tags_view()}));
  auto sink = std::make_shared<recording_sink>();
  subscription_filter f;
  f.view = "live_tags";  // the whole view
  ASSERT_TRUE(rt().subscribe(f, sink));
  append("doc.put", "d1", {{"tag", "red"}});
  uint64_t last = append("doc.delete", "d1");
  ASSERT_TRUE(wait_sync(rt(), "live_tags", last));
  std::vector<std::string> published, logged;
  for (auto& item : sink->wait_items(2)) published.push_back(item->key);
  auto page = rt().changes_since("live_tags", 0, 10);
  ASSERT_TRUE(page);
  for (auto& entry : page->entries)
    for (auto& c : entry.changes) logged.push_back(c.key);
  EXPECT_EQ(published, (std::vector<std::string>{"tag:red", "tag:red"}));
  EXPECT_EQ(logged, published);
}

TEST_F(runtime_test, ADerivedViewNeverSeesPrivateWrites) {
  // Records every key of live_tags it receives.
  auto seen = view_def("seen").from_view("live_tags").apply_change(
      [](const upstream_change& c, view_txn& tx) { tx.put(c.key, true); });
  ASSERT_TRUE(start({docs_view(), live_tags_view(), seen}));
  append("doc.put", "d1", {{"tag", "red"}});
  uint64_t last = append("doc.put", "d2", {{"tag", "blue"}});
  ASSERT_TRUE(wait_sync(rt(), "seen", last));
  EXPECT_EQ(read_view(rt(), "seen").state,
            (state_map{{"tag:blue", json(true)}, {"tag:red", json(true)}}));
}

TEST_F(runtime_test, AQueryReadsThePrivateState) {
  ASSERT_TRUE(start({docs_view(), live_tags_view()}));
  uint64_t at = append("doc.put", "d1", {{"tag", "red"}});
  ASSERT_TRUE(wait_sync(rt(), "live_tags", at));
  auto out = rt().query("live_tags", "tag_of", {{"doc", "d1"}});
  ASSERT_TRUE(out);
  EXPECT_EQ((*out)["tag"], "red");
  EXPECT_EQ((*rt().query("live_tags", "tag_of", {{"doc", "d2"}}))["tag"], nullptr);
}

TEST_F(runtime_test, PrivateStateSurvivesAReopenAndIsRebuiltWithANewVersion) {
  ASSERT_TRUE(start({docs_view(), live_tags_view(1)}));
  append("doc.put", "d1", {{"tag", "red"}});
  uint64_t at = append("doc.put", "d2", {{"tag", "blue"}});
  ASSERT_TRUE(wait_sync(rt(), "live_tags", at));
  ASSERT_TRUE(start({docs_view(), live_tags_view(1)}));
  append("doc.delete", "d1");  // needs the private tag of d1 to update tag:red
  EXPECT_EQ(get_at_head("live_tags", "tag:red"), std::nullopt);
  ASSERT_TRUE(start({docs_view(), live_tags_view(2)}));
  EXPECT_EQ(get_at_head("live_tags", "tag:blue"), json(1));
  EXPECT_EQ(get_private("live_tags", "doc:d1"), std::nullopt);
  EXPECT_EQ(get_private("live_tags", "doc:d2"), json("blue"));
}

// --- subscriptions ---

TEST_F(runtime_test, ASubscriptionToAKeyGetsItsChanges) {
  ASSERT_TRUE(start({docs_view()}));
  auto sink = std::make_shared<recording_sink>();
  subscription_filter f;
  f.view = "docs";
  f.key = "d1";
  ASSERT_TRUE(rt().subscribe(f, sink));
  append("doc.put", "d2", {{"n", 2}});
  uint64_t at = append("doc.put", "d1", {{"n", 1}});
  auto items = sink->wait_items(1);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0]->key, "d1");
  EXPECT_EQ(items[0]->offset, at);
  EXPECT_EQ(json::parse(*items[0]->wire), json::parse(R"({"offset":)" + std::to_string(at) +
                                                      R"(,"key":"d1","value":{"n":1}})"));
}

TEST_F(runtime_test, ASubscriptionToAPrefixGetsDeletesAsNull) {
  ASSERT_TRUE(start({docs_view()}));
  auto sink = std::make_shared<recording_sink>();
  subscription_filter f;
  f.view = "docs";
  f.prefix = "d";
  ASSERT_TRUE(rt().subscribe(f, sink));
  append("doc.put", "d1", {{"n", 1}});
  append("doc.put", "x1", {{"n", 1}});
  append("doc.delete", "d1");
  auto items = sink->wait_items(2);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_FALSE(items[1]->value.has_value());
  EXPECT_EQ(json::parse(*items[1]->wire)["value"], nullptr);
}

TEST_F(runtime_test, AfterUnsubscribeNothingMoreArrives) {
  ASSERT_TRUE(start({docs_view()}));
  auto sink = std::make_shared<recording_sink>();
  subscription_filter f;
  f.view = "docs";
  auto id = rt().subscribe(f, sink);
  ASSERT_TRUE(id);
  append("doc.put", "d1", {{"n", 1}});
  sink->wait_items(1);
  rt().unsubscribe(*id);
  append("doc.put", "d2", {{"n", 2}});
  ASSERT_TRUE(wait_sync(rt(), "docs", rt().head()));
  EXPECT_EQ(sink->items().size(), 1u);
}

TEST_F(runtime_test, SubscribingToAnUnknownViewFails) {
  ASSERT_TRUE(start({docs_view()}));
  subscription_filter f;
  f.view = "nope";
  EXPECT_EQ(rt().subscribe(f, std::make_shared<recording_sink>()).error().code(),
            errc::unknown_view);
}

// --- stop and reopen ---

TEST_F(runtime_test, AfterStopAppendsAreUnavailable) {
  ASSERT_TRUE(start({counts_view()}));
  rt().stop();
  EXPECT_FALSE(rt().running());
  EXPECT_EQ(append_one(rt(), "a", "k").error().code(), errc::unavailable);
  EXPECT_EQ(rt().view("counts")->status, view_status::stopped);
}

TEST_F(runtime_test, StopWakesWaitersWithUnavailable) {
  ASSERT_TRUE(start({counts_view()}));
  std::promise<status> done;
  rt().wait_for("counts", 100, 20s, [&done](status s) { done.set_value(s); });
  rt().stop();
  EXPECT_EQ(done.get_future().get().code(), errc::unavailable);
}

TEST_F(runtime_test, StopAnswersEveryAppendInFlight) {
  ASSERT_TRUE(start({counts_view()}));
  std::atomic<int> ok{0}, failed{0};
  for (int i = 0; i < 200; ++i)
    rt().append(make_request({make_event("a", "k")}), [&](result<append_outcome> r) {
      (r ? ok : failed)++;
    });
  rt().stop();
  EXPECT_EQ(ok + failed, 200);
  EXPECT_EQ(ok.load(), 200);
}

TEST_F(runtime_test, CallbacksMayCallTheRuntimeWhileItStops) {
  ASSERT_TRUE(start({counts_view()}));
  std::atomic<int> answered{0};
  for (int i = 0; i < 200; ++i)
    rt().append(make_request({make_event("a", "k")}), [&](result<append_outcome>) {
      rt().head();
      rt().views();
      ++answered;
    });
  rt().wait_for("counts", 1000, 20s, [&](status) { rt().views(); });
  rt().stop();
  EXPECT_EQ(answered.load(), 200);
}

TEST_F(runtime_test, StateAndOffsetsSurviveAReopen) {
  ASSERT_TRUE(start({counts_view()}));
  append("a", "k");
  uint64_t at = append("a", "k");
  ASSERT_TRUE(wait_sync(rt(), "counts", at));
  ASSERT_TRUE(start({counts_view()}));  // a new runtime on the same directory
  EXPECT_EQ(rt().head(), at);
  EXPECT_EQ(rt().view("counts")->offset, at);
  EXPECT_EQ(append("a", "k"), at + 1);
  EXPECT_EQ(get_at_head("counts", "a"), json(3));
}

TEST_F(runtime_test, ANewVersionRebuildsFromTheLog) {
  ASSERT_TRUE(start({counts_view(1)}));
  append("a", "k");
  uint64_t at = append("a", "k");
  ASSERT_TRUE(wait_sync(rt(), "counts", at));
  ASSERT_TRUE(start({counts_view(2)}));
  // Version 1 serves (stale) until version 2 is ready (versions_test.cpp).
  for (int i = 0; i < 2000 && rt().view("counts")->version != 2; ++i)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(rt().view("counts")->version, 2u);
  EXPECT_EQ(get_at_head("counts", "a"), json(2));
}

// --- metrics ---

TEST_F(runtime_test, MetricsCountAppendsAndAppliedEvents) {
  ASSERT_TRUE(start({counts_view()}));
  append("a", "k");
  append_sync(rt(), make_request({make_event("a", "k"), make_event("a", "k")}));
  ASSERT_TRUE(wait_sync(rt(), "counts", 3));
  auto m = rt().metrics();
  EXPECT_EQ(m.head, 3u);
  EXPECT_EQ(m.appended_events, 3u);
  EXPECT_EQ(m.append_requests, 2u);
  EXPECT_EQ(m.append_latency_count, 2u);
  EXPECT_EQ(m.append_latency_buckets.back().second, 2u);
  ASSERT_EQ(m.views.size(), 1u);
  EXPECT_EQ(m.views[0].applied, 3u);
}


// --- waiting for a stop signal ---

TEST(stop_signals_test, WaitReturnsTheSignalThatArrived) {
  derive::stop_signals signals;
  std::thread killer([] {
    std::this_thread::sleep_for(100ms);
    ::kill(::getpid(), SIGTERM);
  });
  EXPECT_EQ(signals.wait(), SIGTERM);
  killer.join();
}

TEST(stop_signals_test, ACaughtHangupWakesWaitAndIsRestoredAfterwards) {
  {
    derive::stop_signals signals(true);
    ::kill(::getpid(), SIGHUP);  // would end the process if not caught
    EXPECT_EQ(signals.wait(), SIGHUP);
  }
  struct sigaction now {};
  sigaction(SIGHUP, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
}

TEST(stop_signals_test, NotifyWakesWaitFromAnotherThread) {
  derive::stop_signals signals;
  std::thread notifier([&signals] {
    std::this_thread::sleep_for(100ms);
    signals.notify();
  });
  EXPECT_EQ(signals.wait(), 0);
  notifier.join();
}

TEST(stop_signals_test, OnlyOneObjectAtATimeAndHandlersAreRestored) {
  {
    derive::stop_signals signals;
    EXPECT_THROW(derive::stop_signals second, std::logic_error);
  }
  struct sigaction now {};
  sigaction(SIGTERM, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
  derive::stop_signals again;  // the slot is free again
}

// --- application actors ---

// On (append_atom), appends through the sequencer's typed handle; then waits
// for the change of its event as a message.
caf::behavior app_actor(caf::event_based_actor* self, sequencer_actor seq,
                        std::promise<uint64_t>* appended, std::promise<std::string>* seen) {
  return {
      [=](append_atom) {
        self->request(seq, caf::infinite, append_atom::value,
                      make_request({make_event("doc.put", "a1", {{"n", 1}})}))
            .then([=](const append_outcome& out) { appended->set_value(out.first_offset); });
      },
      [=](changes_atom, const change_batch& batch) {
        seen->set_value(batch.items.at(0)->key);
        self->quit();
      },
      [](lost_atom, uint64_t) {},
  };
}

TEST_F(runtime_test, AnApplicationActorAppendsAndSubscribes) {
  ASSERT_TRUE(start({docs_view()}));
  std::promise<uint64_t> appended;
  std::promise<std::string> seen;
  auto actor = rt().system().spawn(app_actor, sequencer_of(rt()), &appended, &seen);
  subscription_filter f;
  f.view = "docs";
  ASSERT_TRUE(subscribe_actor(rt(), f, actor));
  caf::anon_send(actor, append_atom::value);
  EXPECT_EQ(appended.get_future().get(), 1u);
  EXPECT_EQ(seen.get_future().get(), "a1");
}

}  // namespace
}  // namespace derive::testing
