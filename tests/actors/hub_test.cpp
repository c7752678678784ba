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

}  // namespace
}  // namespace derive::testing
