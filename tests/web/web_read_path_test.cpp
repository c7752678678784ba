// The read path under load (issue 9): many subscriptions per view, snapshots
// and HTTP responses bounded in bytes for clients that do not read, and
// gauges back to zero once they are gone. Sized for CI: bounds are generous
// and nothing asserts speed beyond "answered while the load is on".

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "tests/web/web_fixture.hpp"

namespace derive::webtest {
namespace {

using clock = std::chrono::steady_clock;

// This process's resident set (the server runs in it), in bytes.
size_t rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

double ms_since(clock::time_point t) {
  return std::chrono::duration<double, std::milli>(clock::now() - t).count();
}

// A TCP client that sends one HTTP request and never reads the response.
class mute_http_client {
 public:
  mute_http_client(uint16_t port, const std::string& target) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return;
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    (void)!::send(fd_, req.data(), req.size(), 0);
  }
  ~mute_http_client() { ::close(fd_); }

 private:
  int fd_ = -1;
};

class read_path_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override {
    o.max_body_bytes = 8 * 1024 * 1024;
    o.stalled_write_timeout = std::chrono::seconds(60);  // the mute clients stay
    o.max_response_bytes = 1024 * 1024;
    o.snapshot_max_age = snapshot_age_;
  }

  // `n` keys "big/<i>" of about `value_bytes` each; returns the last offset.
  uint64_t fill(size_t n, size_t value_bytes) {
    std::string value(value_bytes, 'x');
    uint64_t last = 0;
    for (size_t i = 0; i < n;) {
      json batch = json::array();
      for (size_t j = 0; j < 40 && i < n; ++j, ++i) {
        batch.push_back({{"type", "doc.put"}, {"key", "big/" + std::to_string(100000 + i)},
                         {"data", {{"v", value}}}});
      }
      auto r = post_events(batch.dump());
      EXPECT_EQ(r.status, 201) << r.body.substr(0, 200);
      auto offsets = r.body_json()["offsets"];
      if (!offsets.empty()) last = offsets.back().get<uint64_t>();
    }
    return last;
  }

  // Every key of `view` (paging with `next`), and the pages' sizes.
  std::vector<std::string> all_keys(const std::string& view, uint64_t after,
                                    size_t* max_body = nullptr) {
    std::vector<std::string> keys;
    std::string start;
    for (;;) {
      auto r = get("/v1/views/" + view + "?limit=10000&after=" + std::to_string(after) +
                   "&start=" + start);
      EXPECT_EQ(r.status, 200);
      if (max_body) *max_body = std::max(*max_body, r.body.size());
      auto j = r.body_json();
      for (auto& item : j["items"]) keys.push_back(item["key"].get<std::string>());
      if (j["next"].is_null()) break;
      start = j["next"].get<std::string>();
      EXPECT_FALSE(j["items"].empty());
    }
    return keys;
  }

  uint64_t gauge(const std::string& name) {
    auto r = get("/metrics");
    std::istringstream in(r.body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(name + " ", 0) == 0) return std::stoull(line.substr(name.size() + 1));
    }
    ADD_FAILURE() << "no metric " << name;
    return UINT64_MAX;
  }

  // Waits (5 s at most) until both WebSocket gauges are back to zero.
  void expect_gauges_return_to_zero() {
    auto deadline = clock::now() + std::chrono::seconds(5);
    uint64_t queued = 0, subs = 0, conns = 0;
    do {
      queued = gauge("derive_ws_queued_bytes");
      subs = gauge("derive_ws_subscriptions");
      conns = gauge("derive_ws_connections");
      if (queued == 0 && subs == 0 && conns == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (clock::now() < deadline);
    EXPECT_EQ(queued, 0u);
    EXPECT_EQ(subs, 0u);
    EXPECT_EQ(conns, 0u);
  }

  // GET /v1/health on a fresh connection; returns its latency (ms).
  double health_ms() {
    auto t = clock::now();
    expect_healthy();
    return ms_since(t);
  }

  // The slowest of `samples` health checks, `gap` apart: the server under load.
  double worst_health(int samples, std::chrono::milliseconds gap) {
    double worst = 0;
    for (int i = 0; i < samples; ++i) {
      worst = std::max(worst, health_ms());
      std::this_thread::sleep_for(gap);
    }
    return worst;
  }

  std::chrono::milliseconds snapshot_age_{std::chrono::seconds(30)};
};

// 50 clients subscribe to a 20 MB view and never read: each holds about a
// chunk ahead of its socket, not the view (before: the whole snapshot each).
TEST_F(read_path_test, snapshots_for_clients_that_do_not_read_stay_bounded) {
  uint64_t last = fill(400, 50 * 1024);  // ~20 MB
  all_keys("docs", last);                // caught up
  size_t before = rss_bytes();
  std::vector<std::unique_ptr<ws_connection>> clients;
  for (int i = 0; i < 50; ++i) {
    clients.push_back(std::make_unique<ws_connection>(port(), std::map<std::string, std::string>{},
                                                      "/v1/ws", 4096));
    clients.back()->send({{"op", "subscribe"}, {"id", "s"}, {"view", "docs"}, {"prefix", ""}});
  }
  double worst_health = this->worst_health(10, std::chrono::milliseconds(150));  // ~1.5 s
  size_t growth = rss_bytes() > before ? rss_bytes() - before : 0;
  std::cout << "[ measured ] 50 mute snapshot clients on a 20 MB view: RSS +" << growth / 1024
            << " KiB, worst /v1/health " << worst_health << " ms\n";
  EXPECT_LT(growth, size_t{200} * 1024 * 1024);
  EXPECT_LT(worst_health, 5000.0);
  EXPECT_GT(gauge("derive_ws_queued_bytes"), 0u);

  // One client reads everything: the complete view, one offset, in order.
  auto reader = connect_ws();
  reader->send({{"op", "subscribe"}, {"id", "r"}, {"view", "docs"}, {"prefix", ""}});
  std::vector<std::string> keys;
  for (;;) {
    auto m = reader->read(10s);
    ASSERT_TRUE(m.has_value());
    ASSERT_EQ((*m)["op"], "snapshot");
    EXPECT_EQ((*m)["offset"], last);
    for (auto& item : (*m)["items"]) keys.push_back(item["key"]);
    if (!(*m)["more"].get<bool>()) break;
  }
  EXPECT_EQ(keys, all_keys("docs", last));

  for (auto& c : clients) c->kill();
  reader->close();
  expect_gauges_return_to_zero();
}

// Clients that close while their snapshots are queued leave no bytes in the
// gauge (it stayed at 93 MB with zero connections).
TEST_F(read_path_test, queued_bytes_return_to_zero_when_snapshot_clients_close) {
  uint64_t last = fill(100, 20 * 1024);
  all_keys("docs", last);
  {
    std::vector<std::unique_ptr<ws_connection>> clients;
    for (int i = 0; i < 10; ++i) {
      clients.push_back(std::make_unique<ws_connection>(
          port(), std::map<std::string, std::string>{}, "/v1/ws", 4096));
      for (int s = 0; s < 3; ++s) {
        clients.back()->send({{"op", "subscribe"}, {"id", "s" + std::to_string(s)},
                              {"view", "docs"}, {"prefix", ""}});
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_GT(gauge("derive_ws_queued_bytes"), 0u);
    EXPECT_EQ(gauge("derive_ws_subscriptions"), 30u);
    for (size_t i = 0; i < clients.size(); ++i) {
      if (i % 2) clients[i]->kill();
      else clients[i]->close();
    }
  }
  expect_gauges_return_to_zero();
}

// Changes committed while a lazy snapshot is being sent wait behind its last
// chunk, at offsets above it; the client's copy ends equal to the view.
TEST_F(read_path_test, changes_during_a_lazy_snapshot_follow_its_last_chunk) {
  uint64_t last = fill(100, 20 * 1024);  // ~2 MB: about 8 chunks
  all_keys("docs", last);
  auto c = std::make_unique<ws_connection>(port(), std::map<std::string, std::string>{},
                                           "/v1/ws", 4096);
  c->send({{"op", "subscribe"}, {"id", "s"}, {"view", "docs"}, {"prefix", ""}});
  auto first = c->read(10s);
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE((*first)["more"].get<bool>());
  uint64_t snap_offset = (*first)["offset"];
  std::map<std::string, json> state;
  for (auto& item : (*first)["items"]) state[item["key"]] = item["value"];
  uint64_t now = 0;
  for (int i = 0; i < 20; ++i) now = put("big/" + std::to_string(100000 + i * 3), {{"v", i}});
  now = del("big/100001");
  bool snapshot_done = false;
  uint64_t applied = snap_offset;
  while (applied < now) {
    auto m = c->read(10s);
    ASSERT_TRUE(m.has_value());
    if ((*m)["op"] == "snapshot") {
      ASSERT_FALSE(snapshot_done);
      EXPECT_EQ((*m)["offset"], snap_offset);
      for (auto& item : (*m)["items"]) state[item["key"]] = item["value"];
      snapshot_done = !(*m)["more"].get<bool>();
      continue;
    }
    ASSERT_EQ((*m)["op"], "changes");
    ASSERT_TRUE(snapshot_done) << "a change before the snapshot's last chunk";
    for (auto& item : (*m)["items"]) {
      ASSERT_GT(item["offset"].get<uint64_t>(), snap_offset);
      if (item["value"].is_null()) state.erase(item["key"]);
      else state[item["key"]] = item["value"];
      applied = item["offset"];
    }
  }
  std::vector<std::string> keys;
  for (auto& [k, v] : state) keys.push_back(k);
  EXPECT_EQ(keys, all_keys("docs", now));
  EXPECT_EQ(state["big/100003"], json({{"v", 1}}));
  c->close();
  expect_gauges_return_to_zero();
}

class snapshot_age_test : public read_path_test {
 protected:
  snapshot_age_test() { snapshot_age_ = std::chrono::milliseconds(200); }
};

// A snapshot whose reader pauses past snapshot_max_age continues from its
// next key when the view did not move, and restarts with "reset": true at a
// newer offset when it did; the client's copy ends equal to the view.
TEST_F(snapshot_age_test, an_old_snapshot_continues_or_restarts_with_reset) {
  uint64_t last = fill(200, 20 * 1024);  // ~4 MB: many chunks
  all_keys("docs", last);
  for (bool moved : {false, true}) {
    auto c = std::make_unique<ws_connection>(port(), std::map<std::string, std::string>{},
                                             "/v1/ws", 4096);
    c->send({{"op", "subscribe"}, {"id", "s"}, {"view", "docs"}, {"prefix", ""}});
    auto first = c->read(10s);
    ASSERT_TRUE(first.has_value());
    ASSERT_TRUE((*first)["more"].get<bool>());
    uint64_t first_offset = (*first)["offset"];
    std::this_thread::sleep_for(std::chrono::milliseconds(700));  // past the age
    uint64_t now = last;
    if (moved) now = last = put("zz-moved", {{"v", 1}});
    // Rebuild the copy as a client does: a snapshot at a new offset starts over.
    std::map<std::string, json> state, chunk;
    uint64_t chunk_offset = first_offset, applied = 0;
    bool saw_reset = false;
    for (auto& item : (*first)["items"]) chunk[item["key"]] = item["value"];
    for (;;) {
      auto m = c->read(10s);
      ASSERT_TRUE(m.has_value());
      if ((*m)["op"] == "changes") {
        for (auto& item : (*m)["items"]) {
          ASSERT_GT(item["offset"].get<uint64_t>(), applied);
          if (item["value"].is_null()) state.erase(item["key"]);
          else state[item["key"]] = item["value"];
          applied = item["offset"];
        }
        if (applied >= now) break;
        continue;
      }
      ASSERT_EQ((*m)["op"], "snapshot");
      uint64_t off = (*m)["offset"];
      ASSERT_GE(off, chunk_offset);  // never backwards
      if (off != chunk_offset) {
        chunk.clear();
        chunk_offset = off;
        EXPECT_TRUE(m->value("reset", false));
        saw_reset = true;
      }
      for (auto& item : (*m)["items"]) {
        ASSERT_EQ(chunk.count(item["key"]), 0u) << "a key twice in one snapshot";
        chunk[item["key"]] = item["value"];
      }
      if (!(*m)["more"].get<bool>()) {
        state = chunk;
        applied = off;
        if (applied >= now) break;
      }
    }
    EXPECT_EQ(saw_reset, moved);
    std::vector<std::string> keys;
    for (auto& [k, v] : state) keys.push_back(k);
    EXPECT_EQ(keys, all_keys("docs", now));
    c->close();
  }
  expect_gauges_return_to_zero();
}

// GET /v1/events and view ranges hold at most max_response_bytes (plus one
// item), continue exactly with `next`, and mute clients do not pile up memory.
TEST_F(read_path_test, http_responses_are_bounded_in_bytes_and_continue_with_next) {
  uint64_t last = fill(60, 200 * 1024);  // 12 MB, 1 MiB cap: ~5 events a page
  // The log, page by page.
  uint64_t from = 1, seen = 0;
  size_t max_body = 0;
  for (;;) {
    auto r = get("/v1/events?limit=10000&from=" + std::to_string(from));
    ASSERT_EQ(r.status, 200);
    max_body = std::max(max_body, r.body.size());
    auto j = r.body_json();
    ASSERT_TRUE(j.contains("head"));
    if (j["events"].empty()) break;
    for (auto& e : j["events"]) EXPECT_EQ(e["offset"].get<uint64_t>(), ++seen);
    EXPECT_EQ(j["next"].get<uint64_t>(), seen + 1);
    from = j["next"];
  }
  EXPECT_EQ(seen, last);
  EXPECT_LE(max_body, size_t{1024 * 1024 + 210 * 1024});
  // The view, page by page.
  size_t max_range_body = 0;
  auto keys = all_keys("docs", last, &max_range_body);
  EXPECT_EQ(keys.size(), 60u);
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), 60u);
  EXPECT_LE(max_range_body, size_t{1024 * 1024 + 210 * 1024});
  // One item larger than the cap is still served, alone.
  std::string huge(1500 * 1024, 'y');
  uint64_t h = put("huge", {{"v", huge}});
  auto r = get("/v1/events?limit=10&from=" + std::to_string(h));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body_json()["events"].size(), 1u);
  r = get("/v1/views/docs?start=huge&limit=10&after=" + std::to_string(h));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body_json()["items"].size(), 1u);
  EXPECT_EQ(r.body_json()["items"][0]["key"], "huge");

  // 10 clients that ask for everything and never read.
  size_t before = rss_bytes();
  std::vector<std::unique_ptr<mute_http_client>> mute;
  for (int i = 0; i < 10; ++i) {
    mute.push_back(std::make_unique<mute_http_client>(port(), "/v1/events?limit=10000"));
    mute.push_back(std::make_unique<mute_http_client>(port(), "/v1/views/docs?limit=10000"));
  }
  double worst = worst_health(8, std::chrono::milliseconds(100));
  size_t growth = rss_bytes() > before ? rss_bytes() - before : 0;
  std::cout << "[ measured ] 20 mute HTTP clients over 12 MB: RSS +" << growth / 1024
            << " KiB, worst /v1/health " << worst << " ms\n";
  EXPECT_LT(growth, size_t{100} * 1024 * 1024);
  mute.clear();
}

// Large responses being written count against max_unsent_response_bytes: a
// client that stops reading pins its page, and beyond the budget another
// large page is refused with 503 overloaded until the pinned one is gone.
// One page larger than the whole budget is still served when it is alone.
// (Every client here has the same address: the refusal is its share's.)
class response_budget_test : public read_path_test {
 protected:
  void configure(web::server_options& o) override {
    read_path_test::configure(o);
    // Pages larger than a socket's send buffer (4 MiB at most by default):
    // a client that does not read leaves most of one in the server.
    o.max_response_bytes = 6 * 1024 * 1024;
    o.max_unsent_response_bytes = 1024 * 1024;  // less than one page
  }

  // Waits (5 s at most) until the gauge satisfies `ok`; returns its value.
  template <class Pred>
  uint64_t await_unsent(Pred ok) {
    auto deadline = clock::now() + std::chrono::seconds(5);
    uint64_t v = gauge("derive_http_unsent_response_bytes");
    while (!ok(v) && clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      v = gauge("derive_http_unsent_response_bytes");
    }
    return v;
  }
};

TEST_F(response_budget_test, a_large_page_beyond_the_budget_waits_for_a_pinned_one) {
  fill(40, 200 * 1024);  // ~8 MB; a page holds 6 MiB and one item more
  auto mute = std::make_unique<mute_http_client>(port(), "/v1/events?limit=10000");
  // Alone, the mute client's page is admitted though it is larger than the
  // budget, and stays charged while it is not read.
  EXPECT_GT(await_unsent([](uint64_t v) { return v > 1024 * 1024; }), uint64_t{1024 * 1024});

  auto r = get("/v1/events?limit=10000");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body_json()["error"]["code"], "overloaded");
  EXPECT_NE(r.body_json()["error"]["message"].get<std::string>().find("max_unsent_response_bytes"),
            std::string::npos);
  EXPECT_EQ(r.header("Retry-After"), "1");
  // Small responses are not held back.
  expect_healthy();
  EXPECT_EQ(get("/v1/views/docs/absent").status, 404);
  EXPECT_GE(gauge("derive_http_responses_overloaded_total"), 1u);

  mute.reset();  // the pinned page's write fails and its charge returns
  EXPECT_EQ(await_unsent([](uint64_t v) { return v == 0; }), 0u);
  r = get("/v1/events?limit=10000");
  ASSERT_EQ(r.status, 200);
  EXPECT_GT(r.body.size(), size_t{5 * 1024 * 1024});
  EXPECT_EQ(gauge("derive_http_unsent_response_bytes"), 0u);
}

// 20 connections x 1000 key subscriptions on one view, then all disconnect
// at once: /v1/health answers throughout (it stalled for 48 s before).
TEST_F(read_path_test, twenty_thousand_subscriptions_come_and_go_with_health_answered) {
  std::vector<std::unique_ptr<ws_connection>> clients;
  double worst = 0;
  auto t0 = clock::now();
  for (int c = 0; c < 20; ++c) {
    clients.push_back(connect_ws());
    for (int s = 0; s < 1000; ++s) {
      clients.back()->send({{"op", "subscribe"}, {"id", std::to_string(s)}, {"view", "docs"},
                            {"key", "k/" + std::to_string(c * 1000 + s)}});
    }
    if (c % 5 == 4) worst = std::max(worst, health_ms());
  }
  // Every subscription answered with its (empty) snapshot.
  for (auto& c : clients) {
    for (int s = 0; s < 1000; ++s) {
      auto m = c->read(20s);
      ASSERT_TRUE(m.has_value());
      ASSERT_EQ((*m)["op"], "snapshot");
    }
  }
  EXPECT_EQ(gauge("derive_ws_subscriptions"), 20000u);
  double subscribe_ms = ms_since(t0);
  // A change reaches exactly its one subscriber.
  uint64_t o = put("k/12345", {{"v", 1}});
  auto m = clients[12]->read(10s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ((*m)["op"], "changes");
  EXPECT_EQ((*m)["id"], "345");
  EXPECT_EQ((*m)["items"][0]["offset"], o);

  auto t1 = clock::now();
  for (auto& c : clients) c->kill();
  clients.clear();
  for (int i = 0; i < 5; ++i) worst = std::max(worst, health_ms());
  expect_gauges_return_to_zero();
  std::cout << "[ measured ] 20,000 subscriptions: subscribed+answered in " << subscribe_ms
            << " ms, all gone in " << ms_since(t1) << " ms, worst /v1/health " << worst
            << " ms\n";
  EXPECT_LT(worst, 5000.0);
}

}  // namespace
}  // namespace derive::webtest
