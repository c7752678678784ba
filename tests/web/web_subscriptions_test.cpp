// Specifications of a connection's subscriptions (web/subscriptions.hpp)
// against a real runtime, without sockets. The test plays the session: it
// hands what the hub delivered to the state machine, and writes the send
// queue out as the socket would, checking the messages that come out.
#include <condition_variable>
#include <mutex>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/actors/test_util.hpp"
#include "tests/web/web_fixture.hpp"
#include "web/subscriptions.hpp"

namespace derive::web {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// What the hub delivered to the sinks of the state machine, in order, as a
// session's inbox holds it.
class hub_recorder : public std::enable_shared_from_this<hub_recorder> {
 public:
  struct delivery {
    uint64_t token = 0;
    std::vector<change_ptr> items;
    bool lost = false;
  };

  // The state machine's sink_factory.
  std::shared_ptr<change_sink> sink(uint64_t token) {
    tokens_.push_back(token);
    return std::make_shared<recording_sink>(shared_from_this(), token);
  }
  // Hub subscriptions made so far, oldest first.
  const std::vector<uint64_t>& tokens() const { return tokens_; }

  // Everything delivered so far, once `sinks` sinks received `offset` (or
  // after 5 s); forgets it. Offset 0: at once.
  std::vector<delivery> take_until(uint64_t offset, size_t sinks) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, 5s, [&] {
      size_t n = 0;
      for (auto& [token, reached] : reached_) n += reached >= offset;
      return offset == 0 || n >= sinks;
    });
    return std::exchange(deliveries_, {});
  }

 private:
  class recording_sink : public change_sink {
   public:
    recording_sink(std::shared_ptr<hub_recorder> r, uint64_t token)
        : recorder_(std::move(r)), token_(token) {}
    void on_changes(uint64_t, std::vector<change_ptr> items) override {
      recorder_->push({token_, std::move(items), false});
    }
    void on_lost(uint64_t) override { recorder_->push({token_, {}, true}); }

   private:
    std::shared_ptr<hub_recorder> recorder_;
    uint64_t token_;
  };

  void push(delivery d) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!d.items.empty()) reached_[d.token] = d.items.back()->offset;
    deliveries_.push_back(std::move(d));
    cv_.notify_all();
  }

  std::vector<uint64_t> tokens_;  // the test's thread only
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<delivery> deliveries_;
  std::map<uint64_t, uint64_t> reached_;  // by token: the last offset delivered
};

class subscriptions_test : public ::testing::Test {
 protected:
  void SetUp() override {
    runtime_options o;
    o.data_dir = dir_.path() + "/data";
    o.storage.mode = durability::relaxed;
    o.storage.map_size = uint64_t{1} << 30;
    rt_ = std::make_unique<runtime>(o);
    rt_->add_view(webtest::docs_view());
    rt_->add_view(webtest::docs_view("recent", 5));  // a changelog of 5 offsets
    ASSERT_TRUE(rt_->start().is_ok());
    options_.snapshot_chunk_items = 2;
    open();
  }

  void TearDown() override {
    subs_.reset();
    rt_->stop();
  }

  // A fresh connection whose queue holds `queue_bytes` of changes.
  void open(size_t queue_bytes = 4 * 1024 * 1024) {
    subs_.reset();
    queue_ = std::make_unique<send_queue>(queue_bytes);
    subs_ = std::make_unique<subscriptions>(
        *rt_, options_, stats_, *queue_,
        [hub = hub_](uint64_t token) { return hub->sink(token); });
  }

  void subscribe(const std::string& id, const std::string& view, std::optional<uint64_t> from = {},
                 std::optional<std::string> key = {}) {
    ws_subscribe op;
    op.filter.view = view;
    op.filter.key = std::move(key);
    op.from = from;
    subs_->subscribe(id, std::move(op));
  }

  // Puts `key` through the log and waits until both views applied it.
  uint64_t put(const std::string& key, const json& data = 1) {
    auto res = testing::append_one(*rt_, "doc.put", key, data);
    EXPECT_TRUE(res.has_value());
    uint64_t offset = res ? res->first_offset : 0;
    EXPECT_TRUE(testing::wait_sync(*rt_, "docs", offset).is_ok());
    EXPECT_TRUE(testing::wait_sync(*rt_, "recent", offset).is_ok());
    return offset;
  }

  uint64_t token() const { return hub_->tokens().back(); }

  // Hands the state machine what the hub delivered, once `sinks` of its hub
  // subscriptions received `offset` (0: what is there now).
  void deliver_until(uint64_t offset, size_t sinks = 1) {
    for (auto& d : hub_->take_until(offset, sinks)) {
      if (d.lost) subs_->on_lost(d.token);
      else subs_->on_changes(d.token, std::move(d.items));
    }
  }

  // Writes out the queue as the session does when the socket is free: starts
  // waiting subscriptions, then takes the next message, until nothing is left.
  std::vector<json> written() {
    std::vector<json> out;
    for (;;) {
      subs_->start_waiting();
      auto frame = queue_->pop();
      if (!frame) return out;
      std::string text;
      frame->for_each_piece([&](std::string_view p) { text += p; });
      out.push_back(json::parse(text));
    }
  }

  static std::vector<uint64_t> offsets_of(const json& changes) {
    std::vector<uint64_t> out;
    for (auto& item : changes["items"]) out.push_back(item["offset"].get<uint64_t>());
    return out;
  }

  webtest::temp_dir dir_;
  std::unique_ptr<runtime> rt_;
  server_options options_;
  metrics stats_;
  std::shared_ptr<hub_recorder> hub_ = std::make_shared<hub_recorder>();
  std::unique_ptr<send_queue> queue_;
  std::unique_ptr<subscriptions> subs_;
};

TEST_F(subscriptions_test, a_snapshot_goes_out_in_chunks_then_the_changes_after_it) {
  for (auto k : {"a", "b", "c", "d", "e"}) put(k);
  subscribe("s", "docs");
  auto msgs = written();
  ASSERT_EQ(msgs.size(), 3u);
  std::vector<std::string> keys;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(msgs[i]["op"], "snapshot");
    EXPECT_EQ(msgs[i]["offset"], 5);
    EXPECT_EQ(msgs[i]["more"], i < 2);
    EXPECT_FALSE(msgs[i].contains("reset"));
    for (auto& item : msgs[i]["items"]) keys.push_back(item["key"]);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "c", "d", "e"}));

  deliver_until(put("f"));
  msgs = written();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0]["op"], "changes");
  EXPECT_EQ(msgs[0]["items"], json::parse(R"([{"offset":6,"key":"f","value":1}])"));
}

TEST_F(subscriptions_test, changes_the_snapshot_already_covers_are_dropped) {
  put("a");
  put("b");
  subscribe("s", "docs");
  ASSERT_EQ(written().size(), 1u);  // the snapshot at offset 2
  // The hub may deliver offsets the snapshot holds (committed between the hub
  // subscription and the snapshot's read): never sent, never backwards.
  subs_->on_changes(token(), {make_change(1, "a", "1"), make_change(2, "b", "1")});
  EXPECT_TRUE(written().empty());
  deliver_until(put("c"));
  auto msgs = written();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(offsets_of(msgs[0]), std::vector<uint64_t>{3});
}

TEST_F(subscriptions_test, only_one_snapshot_is_read_at_a_time_and_answers_go_first) {
  put("a");
  subscribe("s1", "docs");
  subscribe("s2", "docs");
  subscribe("s1", "docs");  // duplicate_id: an answer
  subs_->start_waiting();
  EXPECT_TRUE(hub_->tokens().empty());  // the answer waits to be written
  auto msgs = written();
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[0]["op"], "error");
  EXPECT_EQ(msgs[0]["code"], "duplicate_id");
  EXPECT_EQ(msgs[1]["id"], "s1");
  EXPECT_EQ(msgs[2]["id"], "s2");
  EXPECT_EQ(hub_->tokens().size(), 2u);
}

TEST_F(subscriptions_test, a_resume_sends_resumed_then_the_changelog_after_from) {
  put("a");
  put("b");
  put("a", 2);
  put("c");
  subscribe("all", "docs", 2);
  subscribe("one", "docs", 1, "a");
  auto msgs = written();
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_EQ(msgs[0], json::parse(R"({"op":"resumed","id":"all","offset":2})"));
  EXPECT_EQ(msgs[1], json::parse(R"({"op":"resumed","id":"one","offset":1})"));
  // Control messages go first; then each subscription's changes as one batch.
  EXPECT_EQ(msgs[2]["id"], "all");
  EXPECT_EQ(msgs[2]["items"], json::parse(R"([{"offset":3,"key":"a","value":2},
                                              {"offset":4,"key":"c","value":1}])"));
  EXPECT_EQ(msgs[3]["id"], "one");
  EXPECT_EQ(msgs[3]["items"], json::parse(R"([{"offset":3,"key":"a","value":2}])"));

  deliver_until(put("a", 3), 2);
  msgs = written();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(offsets_of(msgs[0]), std::vector<uint64_t>{5});
  EXPECT_EQ(offsets_of(msgs[1]), std::vector<uint64_t>{5});
}

TEST_F(subscriptions_test, resuming_at_the_views_offset_sends_resumed_alone) {
  put("a");
  subscribe("s", "docs", 1);
  auto msgs = written();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0], json::parse(R"({"op":"resumed","id":"s","offset":1})"));
}

TEST_F(subscriptions_test, a_from_that_cannot_be_served_gets_a_reset_snapshot) {
  for (int i = 0; i < 20; ++i) put("k" + std::to_string(i % 3));
  subscribe("pruned", "recent", 1);     // the changelog keeps 5 offsets
  subscribe("ahead", "docs", 1000);     // past the view's offset
  auto msgs = written();
  ASSERT_EQ(msgs.size(), 4u);  // 3 keys in chunks of 2, for each
  for (auto& m : msgs) {
    EXPECT_EQ(m["op"], "snapshot");
    EXPECT_EQ(m["offset"], 20);
    EXPECT_EQ(m["reset"], true);
  }
  EXPECT_EQ(msgs[0]["id"], "pruned");
  EXPECT_EQ(msgs[2]["id"], "ahead");
}

TEST_F(subscriptions_test, lost_changes_are_replaced_by_a_reset_snapshot) {
  put("a");
  subscribe("s", "docs");
  ASSERT_EQ(written().size(), 1u);
  uint64_t first = token();
  deliver_until(put("b"));  // queued, not written yet
  subs_->on_lost(first);
  auto msgs = written();
  ASSERT_EQ(msgs.size(), 1u);  // the queued change is dropped
  EXPECT_EQ(msgs[0]["op"], "snapshot");
  EXPECT_EQ(msgs[0]["reset"], true);
  EXPECT_EQ(msgs[0]["offset"], 2);
  EXPECT_EQ(msgs[0]["items"].size(), 2u);
  EXPECT_EQ(stats_.ws_resets.load(), 1u);
  EXPECT_EQ(stats_.ws_changes_dropped.load(), 1u);

  // The old hub subscription is gone: what it still delivers is ignored.
  ASSERT_NE(token(), first);
  subs_->on_changes(first, {make_change(3, "late", "1")});
  EXPECT_TRUE(written().empty());
  deliver_until(put("c"));
  msgs = written();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(offsets_of(msgs[0]), std::vector<uint64_t>{3});
}

TEST_F(subscriptions_test, a_subscription_that_overflows_the_queue_gets_a_reset_snapshot) {
  open(2000);
  subscribe("s", "docs");
  ASSERT_EQ(written().size(), 1u);  // empty snapshot at 0
  std::vector<event_input> events;
  for (int i = 0; i < 40; ++i) {
    events.push_back(testing::make_event("doc.put", "key" + std::to_string(i),
                                         std::string(100, 'x')));
  }
  auto res = testing::append_sync(*rt_, testing::make_request(std::move(events)));
  ASSERT_TRUE(res.has_value());
  deliver_until(40);  // all 40 at once; distinct keys: conflation cannot help
  auto msgs = written();
  ASSERT_FALSE(msgs.empty());
  EXPECT_EQ(msgs[0]["op"], "snapshot");
  EXPECT_EQ(msgs[0]["reset"], true);
  EXPECT_EQ(msgs[0]["offset"], 40);
  EXPECT_GE(stats_.ws_changes_dropped.load(), 1u);
  for (auto& m : msgs) EXPECT_EQ(m["op"], "snapshot");  // nothing older follows
}

TEST_F(subscriptions_test, requests_that_cannot_be_served_are_answered_with_errors) {
  options_.max_subscriptions = 1;
  subscribe("s", "nope");
  subscribe("s", "docs");
  subscribe("t", "docs");
  subs_->unsubscribe("u");
  subs_->unsubscribe("s");
  subscribe("s", "docs");  // the id is free again
  auto msgs = written();
  ASSERT_EQ(msgs.size(), 5u);
  EXPECT_EQ(msgs[0]["code"], "unknown_view");
  EXPECT_EQ(msgs[1]["code"], "too_many_subscriptions");
  EXPECT_EQ(msgs[2]["code"], "unknown_subscription");
  EXPECT_EQ(msgs[3], json::parse(R"({"op":"unsubscribed","id":"s"})"));
  EXPECT_EQ(msgs[4]["op"], "snapshot");  // the second "s"; the first never started
  EXPECT_EQ(subs_->size(), 1u);
  EXPECT_EQ(stats_.ws_subscriptions.load(), 1);
  subs_->clear();
  EXPECT_EQ(stats_.ws_subscriptions.load(), 0);
}

// Random puts, deliveries, lost notifications and writes: offsets never go
// backwards, and the client's copy ends equal to the view (the state rule).
TEST_F(subscriptions_test, offsets_never_go_backwards_and_the_client_copy_matches_the_view) {
  open(3000);
  subscribe("s", "docs", std::nullopt);
  std::mt19937 rng(7);
  std::map<std::string, json> copy;
  uint64_t last = 0;
  bool in_snapshot = false;
  auto receive = [&] {
    for (auto& m : written()) {
      if (m["op"] == "snapshot") {
        uint64_t offset = m["offset"];
        EXPECT_GE(offset, last);
        if (!in_snapshot) copy.clear();
        for (auto& item : m["items"]) copy[item["key"]] = item["value"];
        in_snapshot = m["more"];
        last = offset;
      } else {
        ASSERT_EQ(m["op"], "changes");
        for (uint64_t o : offsets_of(m)) {
          EXPECT_GT(o, last);
          last = o;
        }
        for (auto& item : m["items"]) {
          if (item["value"].is_null()) copy.erase(item["key"]);
          else copy[item["key"]] = item["value"];
        }
      }
    }
  };
  for (int step = 0; step < 300; ++step) {
    switch (rng() % 6) {
      case 0:
      case 1:
      case 2: put("k" + std::to_string(rng() % 20), std::string(rng() % 200, 'v')); break;
      case 3: deliver_until(0); break;
      case 4: if (rng() % 4 == 0 && !hub_->tokens().empty()) subs_->on_lost(token()); break;
      case 5: receive(); break;
    }
  }
  receive();  // starts a reset snapshot still waiting
  deliver_until(put("last"));
  receive();
  auto view = testing::read_view(*rt_, "docs");
  EXPECT_EQ(last, view.offset);
  EXPECT_EQ(copy, view.state);
  EXPECT_GT(stats_.ws_resets.load(), 0u);  // lost and overflowing both happened
}

}  // namespace
}  // namespace derive::web
