// The subscription hub: matching by key and prefix, commit order, bounds and
// the "lost" signal; actor subscribers deterministically with the test
// coordinator.

#include <derive/actor_handles.hpp>
#include "actors/hub.hpp"
#include "actors/messages.hpp"
#include "tests/actors/deterministic.hpp"
#include "tests/actors/views_fixture.hpp"

namespace derive::testing {
namespace {

change_ptr change(uint64_t offset, std::string key, std::optional<std::string> value = "1") {
  auto c = std::make_shared<published_change>();
  c->offset = offset;
  c->key = std::move(key);
  c->value = std::move(value);
  c->wire = std::make_shared<const std::string>("{}");
  return c;
}

subscription_filter key_filter(std::string key) {
  subscription_filter f;
  f.key = std::move(key);
  return f;
}

subscription_filter prefix_filter(std::string prefix) {
  subscription_filter f;
  f.prefix = std::move(prefix);
  return f;
}

std::vector<std::string> keys(const std::vector<change_ptr>& items) {
  std::vector<std::string> out;
  for (auto& i : items) out.push_back(i->key);
  return out;
}

class hub_test : public deterministic_fixture {
 protected:
  // Delivers one batch as the hub actor would (after a reservation).
  void deliver(size_t view, std::vector<change_ptr> items) {
    ASSERT_TRUE(registry_.try_reserve());
    registry_.deliver(view, items);
  }
  subscription_registry registry_{2, 4};
};

TEST_F(hub_test, AKeySubscriptionGetsOnlyThatKey) {
  auto sink = std::make_shared<recording_sink>();
  registry_.add(0, key_filter("a"), sink);
  deliver(0, {change(1, "a"), change(1, "ab"), change(2, "b")});
  EXPECT_EQ(keys(sink->items()), std::vector<std::string>{"a"});
}

TEST_F(hub_test, APrefixSubscriptionGetsEveryKeyWithThePrefix) {
  auto sink = std::make_shared<recording_sink>();
  registry_.add(0, prefix_filter("a"), sink);
  deliver(0, {change(1, "a"), change(1, "ab"), change(2, "b")});
  EXPECT_EQ(keys(sink->items()), (std::vector<std::string>{"a", "ab"}));
}

TEST_F(hub_test, AnEmptyPrefixMatchesTheWholeViewAndNoOtherView) {
  auto sink = std::make_shared<recording_sink>();
  registry_.add(0, prefix_filter(""), sink);
  deliver(1, {change(1, "a")});
  deliver(0, {change(2, "x"), change(2, "y")});
  EXPECT_EQ(keys(sink->items()), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(sink->batches(), 1u);  // one commit, one batch
}

TEST_F(hub_test, NoBatchWithoutAMatch) {
  auto sink = std::make_shared<recording_sink>();
  registry_.add(0, key_filter("a"), sink);
  deliver(0, {change(1, "b")});
  EXPECT_EQ(sink->batches(), 0u);
}

TEST_F(hub_test, ARemovedSubscriptionGetsNothing) {
  auto sink = std::make_shared<recording_sink>();
  auto id = registry_.add(0, prefix_filter(""), sink);
  EXPECT_TRUE(registry_.remove(id));
  deliver(0, {change(1, "a")});
  EXPECT_TRUE(sink->items().empty());
  EXPECT_FALSE(registry_.remove(id));
}

TEST_F(hub_test, TheBacklogIsBounded) {
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(registry_.try_reserve());
  EXPECT_FALSE(registry_.try_reserve());
  registry_.deliver(0, {});
  EXPECT_TRUE(registry_.try_reserve());
}

TEST_F(hub_test, ASubscriptionMarkedLostHearsItBeforeItsNextBatch) {
  auto sink = std::make_shared<recording_sink>();
  registry_.add(0, prefix_filter(""), sink);
  registry_.mark_lost(0);
  deliver(0, {change(5, "a")});
  EXPECT_EQ(sink->lost(), 1u);
  EXPECT_EQ(sink->items().size(), 1u);
  EXPECT_EQ(registry_.lost_batches(), 1u);
}

TEST_F(hub_test, TheHubActorDeliversInCommitOrder) {
  auto sink = std::make_shared<recording_sink>();
  registry_.add(0, prefix_filter(""), sink);
  auto hub = spawn_hub(sys_, registry_);
  for (uint64_t offset = 1; offset <= 3; ++offset) {
    ASSERT_TRUE(registry_.try_reserve());
    auto items = std::make_shared<std::vector<change_ptr>>(
        std::vector<change_ptr>{change(offset, "k" + std::to_string(offset))});
    caf::anon_send(hub, publish_atom::value, change_batch_msg{0, items});
  }
  sched().run();
  EXPECT_EQ(keys(sink->items()), (std::vector<std::string>{"k1", "k2", "k3"}));
  caf::anon_send_exit(hub, caf::exit_reason::user_shutdown);
}

// An actor subscriber that records what it handles.
struct subscriber_log {
  std::vector<std::string> seen;  // "changes:<n>" or "lost"
};

caf::behavior subscriber(caf::event_based_actor*, subscriber_log* log) {
  return {
      [=](changes_atom, const change_batch& b) {
        log->seen.push_back("changes:" + std::to_string(b.items.size()));
      },
      [=](lost_atom, uint64_t) { log->seen.push_back("lost"); },
  };
}

TEST_F(hub_test, AnActorSubscriberGetsBatchesAsMessages) {
  subscriber_log log;
  auto actor = sys_.spawn(subscriber, &log);
  registry_.add(0, prefix_filter(""), make_actor_sink(actor, 2));
  deliver(0, {change(1, "a"), change(1, "b")});
  sched().run();
  EXPECT_EQ(log.seen, std::vector<std::string>{"changes:2"});
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
}

TEST_F(hub_test, ASlowActorSubscriberLosesBatchesBeyondItsBoundAndIsTold) {
  subscriber_log log;
  auto actor = sys_.spawn(subscriber, &log);
  sched().run();
  registry_.add(0, prefix_filter(""), make_actor_sink(actor, 2));
  deliver(0, {change(1, "a")});
  deliver(0, {change(2, "a")});
  deliver(0, {change(3, "a")});  // the actor has 2 unhandled: dropped
  sched().run();                  // it handles its 2 batches, then hears of the loss
  deliver(0, {change(4, "a")});
  sched().run();
  EXPECT_EQ(log.seen, (std::vector<std::string>{"changes:1", "changes:1", "lost", "changes:1"}));
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
}

TEST_F(hub_test, OverlappingPrefixesKeysAndTheEmptyPrefixEachMatchExactlyTheirKeys) {
  auto all = std::make_shared<recording_sink>();
  auto a = std::make_shared<recording_sink>();
  auto ab = std::make_shared<recording_sink>();
  auto abc = std::make_shared<recording_sink>();
  auto key_ab = std::make_shared<recording_sink>();
  auto other_view = std::make_shared<recording_sink>();
  registry_.add(0, prefix_filter(""), all);
  registry_.add(0, prefix_filter("a"), a);
  registry_.add(0, prefix_filter("ab"), ab);
  registry_.add(0, prefix_filter("abc"), abc);
  registry_.add(0, key_filter("ab"), key_ab);
  registry_.add(1, prefix_filter(""), other_view);
  deliver(0, {change(1, ""), change(1, "a"), change(1, "ab"), change(2, "abcd"), change(2, "b"),
              change(3, "ac")});
  EXPECT_EQ(keys(all->items()), (std::vector<std::string>{"", "a", "ab", "abcd", "b", "ac"}));
  EXPECT_EQ(keys(a->items()), (std::vector<std::string>{"a", "ab", "abcd", "ac"}));
  EXPECT_EQ(keys(ab->items()), (std::vector<std::string>{"ab", "abcd"}));
  EXPECT_EQ(keys(abc->items()), (std::vector<std::string>{"abcd"}));
  EXPECT_EQ(keys(key_ab->items()), (std::vector<std::string>{"ab"}));
  EXPECT_EQ(other_view->batches(), 0u);
  EXPECT_EQ(all->batches(), 1u);
}

TEST_F(hub_test, TwoSubscriptionsOfOnePrefixAreIndependent) {
  auto s1 = std::make_shared<recording_sink>();
  auto s2 = std::make_shared<recording_sink>();
  auto id1 = registry_.add(0, prefix_filter("p/"), s1);
  registry_.add(0, prefix_filter("p/"), s2);
  ASSERT_TRUE(registry_.remove(id1));
  EXPECT_FALSE(registry_.remove(id1));
  deliver(0, {change(1, "p/x")});
  EXPECT_EQ(s1->batches(), 0u);
  EXPECT_EQ(keys(s2->items()), std::vector<std::string>{"p/x"});
  EXPECT_EQ(registry_.count(0), 1u);
}

// 100,000 subscriptions on one view, added and removed in linear time (the
// copy-on-write table made this quadratic: minutes); a change reaches only
// its own subscribers.
TEST_F(hub_test, AHundredThousandSubscriptionsAreAddedMatchedAndRemoved) {
  constexpr size_t n = 100000;
  auto keyed = std::make_shared<recording_sink>();
  auto prefixed = std::make_shared<recording_sink>();
  std::vector<uint64_t> ids;
  ids.reserve(n);
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < n; ++i) {
    auto k = "k" + std::to_string(i);
    ids.push_back(i % 2 ? registry_.add(0, key_filter(k), keyed)
                        : registry_.add(0, prefix_filter(k + "/"), prefixed));
  }
  EXPECT_EQ(registry_.count(0), n);
  deliver(0, {change(1, "k7"), change(1, "k8/x"), change(1, "k8"), change(2, "zzz")});
  EXPECT_EQ(keys(keyed->items()), std::vector<std::string>{"k7"});
  EXPECT_EQ(keys(prefixed->items()), std::vector<std::string>{"k8/x"});
  // Removed in an order that exercises swap-and-pop.
  for (size_t i = 0; i < n; i += 2) EXPECT_TRUE(registry_.remove(ids[i]));
  for (size_t i = n - 1; i < n; i -= 2) EXPECT_TRUE(registry_.remove(ids[i]));
  auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(registry_.count(0), 0u);
  EXPECT_EQ(registry_.total(), 0u);
  EXPECT_LT(elapsed, std::chrono::seconds(20));  // generous: quadratic took minutes
  deliver(0, {change(3, "k7"), change(3, "k8/x")});
  EXPECT_EQ(keyed->items().size(), 1u);
  EXPECT_EQ(prefixed->items().size(), 1u);
}

// Delivery does not hold the registry while calling sinks: a sink may
// subscribe and unsubscribe (the hub thread would deadlock otherwise).
TEST_F(hub_test, ASinkMaySubscribeAndUnsubscribeWhileBeingCalled) {
  struct reentrant_sink : change_sink {
    subscription_registry* reg = nullptr;
    size_t calls = 0;
    void on_changes(uint64_t id, std::vector<change_ptr>) override {
      ++calls;
      reg->remove(id);
      reg->add(0, subscription_filter{}, std::make_shared<recording_sink>());
    }
    void on_lost(uint64_t) override {}
  };
  auto sink = std::make_shared<reentrant_sink>();
  sink->reg = &registry_;
  registry_.add(0, key_filter("a"), sink);
  deliver(0, {change(1, "a")});
  deliver(0, {change(2, "a")});
  EXPECT_EQ(sink->calls, 1u);
  EXPECT_EQ(registry_.count(0), 1u);
}

TEST_F(hub_test, MarkLostTellsEverySubscriptionOnceEvenWithoutMatches) {
  auto s1 = std::make_shared<recording_sink>();
  auto s2 = std::make_shared<recording_sink>();
  registry_.add(0, key_filter("a"), s1);
  auto id2 = registry_.add(0, prefix_filter("b"), s2);
  registry_.mark_lost(0);
  registry_.mark_lost(0);
  deliver(0, {change(1, "a")});
  deliver(0, {change(2, "a")});
  EXPECT_EQ(s1->lost(), 1u);
  EXPECT_EQ(s2->lost(), 1u);
  EXPECT_EQ(s1->batches(), 2u);
  registry_.remove(id2);
}

}  // namespace
}  // namespace derive::testing
