// The state rule under load, resumption after a forced disconnect, and a
// client that stops reading while 100,000 changes flow.
#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "tests/web/web_fixture.hpp"

namespace derive::webtest {
namespace {

using clock = std::chrono::steady_clock;
using state_map = std::map<std::string, json>;

// Every event the writers appended, by offset: the reference model.
class event_record {
 public:
  void add(uint64_t offset, json event) {
    std::lock_guard<std::mutex> lock(mu_);
    events_[offset] = std::move(event);
  }
  std::map<uint64_t, json> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, json> events_;
};

// Two keys per document, changed by one event: "<key>#data" and "<key>#n".
view_def pairs_view() {
  return view_def("pairs").from_log().apply([](const event& e, view_txn& tx) {
    if (e.type == "doc.put") {
      auto data = json::parse(e.data);
      tx.put(e.key + "#data", data);
      tx.put(e.key + "#n", data.value("n", 0));
    } else if (e.type == "doc.delete") {
      tx.erase(e.key + "#data");
      tx.erase(e.key + "#n");
    }
  });
}

enum class view_kind { docs, titles, pairs };

view_kind kind_of(const std::string& view) {
  if (view == "titles") return view_kind::titles;
  if (view == "pairs") return view_kind::pairs;
  return view_kind::docs;
}

// Recomputes a view's state at increasing offsets from the recorded events.
class reference_view {
 public:
  reference_view(const std::map<uint64_t, json>& events, view_kind kind)
      : events_(events), next_(events.begin()), kind_(kind) {}

  // The state at `offset`, restricted to keys matching the filter.
  // REQUIRES: offsets never decrease between calls.
  state_map at(uint64_t offset, const std::optional<std::string>& key, const std::string& prefix) {
    while (next_ != events_.end() && next_->first <= offset) {
      const json& e = next_->second;
      if (e["type"] == "doc.put") docs_[e["key"]] = e["data"];
      else if (e["type"] == "doc.delete") docs_.erase(e["key"].get<std::string>());
      ++next_;
    }
    state_map view;
    for (auto& [k, v] : docs_) {
      if (kind_ == view_kind::docs) {
        view[k] = v;
      } else if (kind_ == view_kind::titles) {
        if (v.is_object() && v.contains("title")) view[k] = v["title"];
      } else {
        view[k + "#data"] = v;
        view[k + "#n"] = v.value("n", 0);
      }
    }
    state_map out;
    for (auto& [k, v] : view) {
      if (key ? k == *key : k.compare(0, prefix.size(), prefix) == 0) out[k] = v;
    }
    return out;
  }

 private:
  const std::map<uint64_t, json>& events_;
  std::map<uint64_t, json>::const_iterator next_;
  view_kind kind_;
  state_map docs_;
};

// One subscriber: reads on its own thread, keeps every message for the
// offline check, and reconstructs its state.
class subscriber {
 public:
  subscriber(uint16_t port, std::string view, std::optional<std::string> key, std::string prefix,
             bool keep_messages = true)
      : port_(port),
        view_(std::move(view)),
        key_(std::move(key)),
        prefix_(std::move(prefix)),
        keep_messages_(keep_messages) {}

  void start(std::atomic<uint64_t>& target, std::optional<size_t> kill_after_items = {}) {
    thread_ = std::thread([this, &target, kill_after_items] { run(target, kill_after_items); });
  }
  void join() { thread_.join(); }

  // Replays the messages against the reference model: the state rule after
  // every message, offsets never decreasing, no (offset, key) twice.
  void check(const std::map<uint64_t, json>& events) const {
    reference_view ref(events, kind_of(view_));
    state_map state;
    uint64_t offset = 0;
    uint64_t base = 0;  // the offset of the last snapshot or "resumed"
    bool in_snapshot = false;
    std::set<std::pair<uint64_t, std::string>> seen;
    for (const auto& m : messages_) {
      SCOPED_TRACE(m.dump().substr(0, 300));
      std::string op = m.value("op", "");
      if (op == "snapshot") {
        uint64_t o = m["offset"];
        if (!in_snapshot) {
          EXPECT_GE(o, offset) << "a snapshot never goes back";
          state.clear();
          in_snapshot = true;
        }
        for (auto& item : m["items"]) state[item["key"]] = item["value"];
        offset = base = o;
        if (!m["more"].get<bool>()) {
          in_snapshot = false;
          EXPECT_EQ(state, ref.at(offset, key_, prefix_));
        }
      } else if (op == "resumed") {
        EXPECT_EQ(m["offset"].get<uint64_t>(), offset);
        base = offset;
        EXPECT_EQ(state, ref.at(offset, key_, prefix_));
      } else if (op == "changes") {
        for (auto& item : m["items"]) {
          uint64_t o = item["offset"];
          EXPECT_GT(o, base);
          EXPECT_GE(o, offset);
          EXPECT_TRUE(seen.insert({o, item["key"].get<std::string>()}).second) << "twice";
          offset = o;
          if (item["value"].is_null()) state.erase(item["key"].get<std::string>());
          else state[item["key"]] = item["value"];
        }
        EXPECT_EQ(state, ref.at(offset, key_, prefix_));
      } else {
        ADD_FAILURE() << "unexpected message";
      }
      if (::testing::Test::HasFailure()) return;  // one clear failure is enough
    }
  }

  const state_map& state() const { return state_; }
  uint64_t offset() const { return offset_; }
  size_t items_received() const { return items_; }
  bool reconnected() const { return reconnected_; }
  const std::optional<std::string>& key() const { return key_; }
  const std::string& prefix() const { return prefix_; }

 private:
  json subscribe_message(std::optional<uint64_t> from) const {
    json m = {{"op", "subscribe"}, {"id", "s"}, {"view", view_}};
    if (key_) m["key"] = *key_;
    else m["prefix"] = prefix_;
    if (from) m["from"] = *from;
    return m;
  }

  void run(std::atomic<uint64_t>& target, std::optional<size_t> kill_after_items) {
    auto c = std::make_unique<ws_connection>(port_);
    c->send(subscribe_message(std::nullopt));
    auto deadline = clock::now() + std::chrono::seconds(45);
    bool in_snapshot = false;
    while (clock::now() < deadline && !(offset_ >= target.load() && !in_snapshot)) {
      if (kill_after_items && !reconnected_ && items_ >= *kill_after_items && !in_snapshot) {
        c->kill();  // a forced disconnect, then resume from what we have
        c = std::make_unique<ws_connection>(port_);
        c->send(subscribe_message(offset_));
        reconnected_ = true;
      }
      auto m = c->read(std::chrono::milliseconds(200));
      if (!m) {
        if (c->closed()) break;
        continue;
      }
      if (keep_messages_) messages_.push_back(*m);
      std::string op = m->value("op", "");
      if (op == "snapshot") {
        if (!in_snapshot) state_.clear();
        in_snapshot = (*m)["more"].get<bool>();
        for (auto& item : (*m)["items"]) state_[item["key"]] = item["value"];
        offset_ = (*m)["offset"];
      } else if (op == "changes") {
        for (auto& item : (*m)["items"]) {
          ++items_;
          offset_ = item["offset"];
          if (item["value"].is_null()) state_.erase(item["key"].get<std::string>());
          else state_[item["key"]] = item["value"];
        }
      }
    }
  }

  uint16_t port_;
  std::string view_;
  std::optional<std::string> key_;
  std::string prefix_;
  bool keep_messages_;
  std::thread thread_;
  std::vector<json> messages_;
  state_map state_;
  uint64_t offset_ = 0;
  size_t items_ = 0;
  bool reconnected_ = false;
};

// The items of a view page (GET /v1/views/{view}) restricted to a filter.
state_map restrict_page(const json& page, const std::optional<std::string>& key,
                        const std::string& prefix) {
  state_map out;
  for (auto& item : page["items"]) {
    std::string k = item["key"];
    if (key ? k != *key : k.compare(0, prefix.size(), prefix) != 0) continue;
    out[k] = item["value"];
  }
  return out;
}

// Appends random puts and deletes over `keys` keys from its own connection.
void write_randomly(uint16_t port, unsigned seed, int requests, event_record& record) {
  std::mt19937 rng(seed);
  http_connection c(port);
  const char* prefixes[] = {"a/", "b/", "c/"};
  for (int r = 0; r < requests; ++r) {
    json events = json::array();
    int n = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) {
      std::string key = std::string(prefixes[rng() % 3]) + std::to_string(rng() % 16);
      if (rng() % 10 < 3) {
        events.push_back({{"type", "doc.delete"}, {"key", key}});
      } else {
        json data = {{"n", rng() % 1000}};
        if (rng() % 4) data["title"] = "t" + std::to_string(rng() % 100);
        events.push_back({{"type", "doc.put"}, {"key", key}, {"data", data}});
      }
    }
    auto res = c.post("/v1/events", events.dump());
    ASSERT_EQ(res.status, 201) << res.body;
    auto offsets = res.body_json()["offsets"];
    for (size_t i = 0; i < offsets.size(); ++i) record.add(offsets[i], events[i]);
  }
}

class load_test : public web_fixture {
 protected:
  void add_views(runtime& rt) override {
    web_fixture::add_views(rt);
    rt.add_view(pairs_view());
  }
  void configure(web::server_options& o) override {
    o.threads = 2;
    o.snapshot_chunk_items = 7;  // small chunks: snapshots arrive in pieces
  }

  // Appends one array touching a key of every subscription; returns the
  // offset of its last event.
  uint64_t append_markers(event_record& record) {
    json events = json::array();
    for (const char* key : {"a/3", "a/marker", "b/marker", "c/marker"}) {
      events.push_back({{"type", "doc.put"}, {"key", key}, {"data", {{"title", "end"}}}});
    }
    auto res = post_events(events.dump());
    EXPECT_EQ(res.status, 201);
    auto offsets = res.body_json()["offsets"];
    for (size_t i = 0; i < offsets.size(); ++i) record.add(offsets[i], events[i]);
    return offsets.back();
  }

};

TEST_F(load_test, every_subscriber_sees_the_view_state_after_every_message) {
  event_record record;
  std::atomic<uint64_t> target{UINT64_MAX};
  std::vector<std::unique_ptr<subscriber>> subs;
  subs.push_back(std::make_unique<subscriber>(port(), "docs", "a/3", ""));
  subs.push_back(std::make_unique<subscriber>(port(), "docs", std::nullopt, "a/"));
  subs.push_back(std::make_unique<subscriber>(port(), "docs", std::nullopt, ""));
  subs.push_back(std::make_unique<subscriber>(port(), "titles", std::nullopt, ""));
  subs.push_back(std::make_unique<subscriber>(port(), "pairs", std::nullopt, "c/"));
  subs.push_back(std::make_unique<subscriber>(port(), "docs", std::nullopt, "b/"));
  for (size_t i = 0; i + 1 < subs.size(); ++i) subs[i]->start(target);
  subs.back()->start(target, 150);  // killed after 150 items, then resumes

  std::vector<std::thread> writers;
  for (unsigned w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] { write_randomly(port(), 17 + w, 250, record); });
  }
  for (auto& t : writers) t.join();
  uint64_t head = append_markers(record);
  target = head - 3;  // every subscription's marker is at or after this
  for (auto& s : subs) s->join();

  auto events = record.events();
  ASSERT_EQ(events.size(), head);  // the reference holds every offset 1..head
  EXPECT_TRUE(subs.back()->reconnected());
  const char* views[] = {"docs", "docs", "docs", "titles", "pairs", "docs"};
  for (size_t i = 0; i < subs.size(); ++i) {
    SCOPED_TRACE("subscriber " + std::to_string(i));
    EXPECT_GE(subs[i]->offset(), head - 3);
    subs[i]->check(events);
    EXPECT_EQ(subs[i]->state(),
              restrict_page(view_state(views[i], head), subs[i]->key(), subs[i]->prefix()));
  }
  std::printf("[ load ] %llu events, items received per subscriber:",
              static_cast<unsigned long long>(head));
  for (auto& s : subs) std::printf(" %zu", s->items_received());
  std::printf("\n");
  expect_healthy();
}

// --- slow clients --------------------------------------------------------------

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

int64_t metric(uint16_t port, const std::string& name) {
  auto text = http_get(port, "/metrics").body;
  auto pos = text.find("\n" + name + " ");
  if (pos == std::string::npos) return -1;
  return std::stoll(text.substr(pos + name.size() + 2));
}

class slow_client_test : public web_fixture {
 protected:
  static constexpr size_t queue_bytes = 256 * 1024;
  void configure(web::server_options& o) override {
    o.send_queue_bytes = queue_bytes;
    // Also the time the slow client gets, once closed, to read the rest of the
    // stalled write and the close frame (protocol.md: max(this, 2 s)); under a
    // loaded CI machine 2 s were once too short and it saw no close frame.
    o.stalled_write_timeout = std::chrono::milliseconds(4000);
  }
};

TEST_F(slow_client_test, a_client_that_stops_reading_holds_back_no_one_and_stays_bounded) {
  constexpr int requests = 100;  // x 1000 events = 100,000 changes
  constexpr int keys = 5000;
  event_record record;
  std::atomic<uint64_t> target{UINT64_MAX};
  subscriber fast(port(), "docs", std::nullopt, "", /*keep_messages=*/false);
  fast.start(target);

  ws_connection slow(port(), {}, "/v1/ws", 4096);
  slow.send({{"op", "subscribe"}, {"id", "slow"}, {"view", "docs"}, {"prefix", ""}});
  ASSERT_TRUE(slow.read());  // the (empty) snapshot; from now on it reads nothing

  long rss_before = rss_kib();
  std::atomic<bool> writing{true};
  long rss_max = rss_before;
  int64_t queued_max = 0;
  std::thread sampler([&] {
    while (writing) {
      rss_max = std::max(rss_max, rss_kib());
      queued_max = std::max(queued_max, metric(port(), "derive_ws_queued_bytes"));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  // The slow client starts reading again as soon as the server gave up on
  // it (or when the writers are done), so that it can see the close frame.
  std::optional<ws_close_info> slow_closed;
  state_map slow_state;
  uint64_t slow_offset = 0;
  std::atomic<bool> writers_done{false};
  std::thread slow_reader([&] {
    while (!writers_done && metric(port(), "derive_ws_slow_closes_total") < 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    bool in_snapshot = false;
    auto deadline = clock::now() + std::chrono::seconds(30);
    while (clock::now() < deadline && !(slow_offset >= target.load() && !in_snapshot)) {
      auto m = slow.read(std::chrono::milliseconds(200));
      if (!m) {
        if ((slow_closed = slow.closed())) break;
        continue;
      }
      if ((*m)["op"] == "snapshot") {
        if (!in_snapshot) slow_state.clear();
        in_snapshot = (*m)["more"].get<bool>();
        for (auto& item : (*m)["items"]) slow_state[item["key"]] = item["value"];
        slow_offset = (*m)["offset"];
      } else if ((*m)["op"] == "changes") {
        for (auto& item : (*m)["items"]) {
          slow_offset = item["offset"];
          if (item["value"].is_null()) slow_state.erase(item["key"].get<std::string>());
          else slow_state[item["key"]] = item["value"];
        }
      }
    }
  });

  std::mt19937 rng(7);
  http_connection writer(port());
  for (int r = 0; r < requests; ++r) {
    json events = json::array();
    for (int i = 0; i < 1000; ++i) {
      events.push_back({{"type", "doc.put"},
                        {"key", "k" + std::to_string(rng() % keys)},
                        {"data", r * 1000 + i}});
    }
    auto res = writer.post("/v1/events", events.dump());
    EXPECT_EQ(res.status, 201) << res.body;
    if (res.status != 201) break;
  }
  auto marker = post_events(R"({"type":"doc.put","key":"marker","data":1})");
  uint64_t head = marker.body_json()["offset"];
  target = head;
  writers_done = true;
  fast.join();
  writing = false;
  sampler.join();
  slow_reader.join();

  std::printf("[ slow ] VmRSS before %ld KiB, max %ld KiB (+%ld KiB); queued bytes max %lld "
              "(limit %zu per connection); conflated %lld, dropped %lld, resets %lld, "
              "slow closes %lld; slow client %s\n",
              rss_before, rss_max, rss_max - rss_before, static_cast<long long>(queued_max),
              queue_bytes, static_cast<long long>(metric(port(), "derive_ws_changes_conflated_total")),
              static_cast<long long>(metric(port(), "derive_ws_changes_dropped_total")),
              static_cast<long long>(metric(port(), "derive_ws_resets_total")),
              static_cast<long long>(metric(port(), "derive_ws_slow_closes_total")),
              slow_closed ? ("closed with " + std::to_string(slow_closed->code)).c_str()
                          : "caught up");
  // The fast subscriber got everything, and its state is the view's.
  EXPECT_EQ(fast.offset(), head);
  EXPECT_EQ(fast.state(), restrict_page(view_state("docs", head), std::nullopt, ""));
  // Memory stayed bounded: queued bytes stay near the configured limit (two
  // subscriptions: their change queues plus one snapshot being written).
  EXPECT_LT(queued_max, static_cast<int64_t>(8 * queue_bytes));
  EXPECT_LT(rss_max - rss_before, 256 * 1024);
  // The slow client either was closed with 1008, or caught up correctly.
  if (slow_closed) {
    EXPECT_EQ(slow_closed->code, 1008);
    EXPECT_FALSE(slow_closed->reason.empty());
  } else {
    EXPECT_EQ(slow_offset, head);
    EXPECT_EQ(slow_state, restrict_page(view_state("docs", head), std::nullopt, ""));
  }
  expect_healthy();
}

class stalled_client_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override {
    o.stalled_write_timeout = std::chrono::milliseconds(500);
  }
};

TEST_F(stalled_client_test, a_client_that_stops_reading_is_closed_with_1008) {
  ws_connection slow(port(), {}, "/v1/ws", 4096);
  slow.send({{"op", "subscribe"}, {"id", "slow"}, {"view", "docs"}, {"prefix", ""}});
  ASSERT_TRUE(slow.read());  // the snapshot; then it stops reading
  auto other = connect_ws();
  other->send({{"op", "subscribe"}, {"id", "s"}, {"view", "docs"}, {"key", "k0"}});
  expect_op(*other, "snapshot");

  // Changes flow until the server gives up on the slow client.
  http_connection writer(port());
  std::string pad(2000, 'x');
  auto deadline = clock::now() + std::chrono::seconds(20);
  int batch = 0;
  while (metric(port(), "derive_ws_slow_closes_total") < 1 && clock::now() < deadline) {
    json events = json::array();
    for (int i = 0; i < 100; ++i) {
      events.push_back({{"type", "doc.put"},
                        {"key", "k" + std::to_string(batch * 100 + i)},
                        {"data", pad}});
    }
    ASSERT_EQ(writer.post("/v1/events", events.dump()).status, 201);
    ++batch;
  }
  ASSERT_GE(metric(port(), "derive_ws_slow_closes_total"), 1);
  auto closed = slow.wait_close(std::chrono::seconds(10));
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->code, 1008);
  EXPECT_EQ(closed->reason, "the client stopped reading");
  // The other subscriber was never held back.
  uint64_t o = put("k0", "last");
  json last;
  while (auto m = other->read(std::chrono::seconds(5))) {
    if ((*m)["op"] == "changes" && (*m)["items"].back()["offset"] == o) {
      last = *m;
      break;
    }
  }
  EXPECT_EQ(last["items"].back()["value"], "last");
  expect_healthy();
}

}  // namespace
}  // namespace derive::webtest
