// Specification of retention (runtime_options.retention, docs/storage.md
// "Retention"), with a test clock: events past their rule's keep are
// redacted in the log and gone from the views (which equal a recomputation
// from the redacted log), others are untouched, a receipt says what went and
// why, an interrupted sweep resumes at the next start, and bad rules are
// refused.

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "test_util.hpp"
#include "core/log.hpp"

namespace derive::testing {
namespace {

using namespace std::chrono_literals;
constexpr int64_t day = 24 * 3600 * 1000;
constexpr int64_t t0 = 1'700'000'000'000;

// events: key -> {type, data} of every event; by_type (derived): "type/key" -> true.
void apply_event(const event& e, view_txn& tx) {
  tx.put(e.key, json{{"type", e.type}, {"data", json::parse(e.data)}});
}

std::vector<view_def> views() {
  return {view_def("events").from_log().apply(apply_event),
          view_def("by_type").from_view("events").apply_change(
              [](const upstream_change& c, view_txn& tx) {
                if (auto was = tx.get_private(c.key)) {
                  tx.erase(was->get<std::string>() + "/" + c.key);
                  tx.erase_private(c.key);
                }
                if (!c.value) return;
                const auto type = (*c.value)["type"].get<std::string>();
                tx.put(type + "/" + c.key, true);
                tx.put_private(c.key, type);
              })};
}

// "<file>: <needle>" for each of `needles` some file under `dir` holds.
std::vector<std::string> files_holding(const std::string& dir,
                                       const std::vector<std::string>& needles) {
  std::vector<std::string> hits;
  for (auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (auto& n : needles)
      if (bytes.find(n) != std::string::npos) hits.push_back(entry.path().string() + ": " + n);
  }
  return hits;
}

result<retention_sweep> sweep_sync(runtime& rt) {
  std::promise<result<retention_sweep>> done;
  auto future = done.get_future();
  rt.sweep_retention([&done](result<retention_sweep> r) { done.set_value(std::move(r)); });
  return future.get();
}

class retention_test : public ::testing::Test {
 protected:
  runtime_options options(std::vector<retention_rule> rules,
                          std::chrono::milliseconds interval = std::chrono::hours(24 * 1000)) {
    runtime_options o;
    o.data_dir = dir_.path();
    o.log.clock = [this] { return now_.load(); };
    o.retention = std::move(rules);
    o.retention_interval = interval;
    return o;
  }
  static std::vector<retention_rule> rules() {
    return {{"session.*", std::chrono::hours(24 * 30)}, {"page.view", std::chrono::hours(24 * 7)}};
  }
  std::unique_ptr<runtime> start(std::vector<retention_rule> r = rules()) {
    auto rt = std::make_unique<runtime>(options(std::move(r)));
    for (auto& v : views()) rt->add_view(v);
    EXPECT_TRUE(rt->start());
    EXPECT_TRUE(sweep_sync(*rt));  // the sweep every start begins with is done
    return rt;
  }
  void append(runtime& rt, const std::string& type, const std::string& key) {
    auto r = append_sync(rt, make_request({make_event(type, key, json{{"secret", key}})},
                                          "idem-" + key));
    ASSERT_TRUE(r) << r.error().to_string();
    offset_of_[key] = r->first_offset;
  }
  // The views equal a recomputation from the (redacted) log.
  void expect_views_match_the_log(runtime& rt) {
    ASSERT_TRUE(wait_sync(rt, "by_type", rt.head()));
    auto log = rt.read_log(1, 100000);
    ASSERT_TRUE(log);
    state_map events, by_type;
    for (auto& e : *log) {
      if (e.redacted) continue;
      events[e.key] = json{{"type", e.type}, {"data", json::parse(e.data)}};
      by_type[e.type + "/" + e.key] = true;
    }
    EXPECT_EQ(read_view(rt, "events").state, events);
    EXPECT_EQ(read_view(rt, "by_type").state, by_type);
  }
  bool redacted(runtime& rt, const std::string& key) {
    auto e = rt.read_log(offset_of_.at(key), 1);
    EXPECT_TRUE(e && e->size() == 1);
    if (!e || e->empty()) return false;
    if (e->front().redacted) {
      EXPECT_TRUE(e->front().key.empty());
      EXPECT_EQ(e->front().data, "null");
      EXPECT_EQ(e->front().to_json().find(key), std::string::npos);
    } else {
      EXPECT_EQ(e->front().key, key);
    }
    return e->front().redacted;
  }
  std::vector<event> receipts(runtime& rt) {
    std::vector<event> out;
    auto log = rt.read_log(1, 100000);
    EXPECT_TRUE(log);
    for (auto& e : *log)
      if (e.type == retention_event_type) out.push_back(e);
    return out;
  }

  temp_dir dir_;
  std::atomic<int64_t> now_{t0};
  std::map<std::string, uint64_t> offset_of_;
};

TEST_F(retention_test, ExpiredEventsDisappearFromTheLogAndTheViews) {
  auto rt = start();
  for (int i = 0; i < 5; ++i) append(*rt, "session.login", "s" + std::to_string(i));
  append(*rt, "session.logout", "s-out");
  append(*rt, "sessions", "not-a-session");  // "session.*" needs the dot
  append(*rt, "order.placed", "o1");
  append(*rt, "page.view", "p1");
  append(*rt, "page.view", "p2");
  now_ = t0 + 10 * day;
  append(*rt, "session.login", "s-late");
  append(*rt, "page.view", "p-late");
  expect_views_match_the_log(*rt);
  // p1's bytes as the log, its idempotency key and the views stored them.
  const std::vector<std::string> p1_bytes{"\"secret\":\"p1\"", "idem-p1"};
  ASSERT_FALSE(files_holding(dir_.path(), p1_bytes).empty());  // the scan can find

  // Day 10: page.view (7 days) of day 0 expired; sessions (30 days) not.
  auto sweep = sweep_sync(*rt);
  ASSERT_TRUE(sweep) << sweep.error().to_string();
  EXPECT_EQ(sweep->expired, 2u);
  ASSERT_EQ(sweep->receipts.size(), 1u);
  EXPECT_EQ(sweep->receipts[0].rule, "page.view");
  EXPECT_EQ(sweep->receipts[0].offsets,
            (std::vector<uint64_t>{offset_of_["p1"], offset_of_["p2"]}));
  EXPECT_EQ(sweep->receipts[0].before, t0 + 3 * day);
  EXPECT_EQ(sweep->receipts[0].views, (std::vector<std::string>{"events", "by_type"}));
  EXPECT_TRUE(redacted(*rt, "p1"));
  EXPECT_TRUE(redacted(*rt, "p2"));
  // No file holds them when the sweep returns (compacted online).
  for (auto& hit : files_holding(dir_.path(), p1_bytes)) ADD_FAILURE() << hit;
  for (auto k : {"s0", "s4", "s-out", "not-a-session", "o1", "s-late", "p-late"})
    EXPECT_FALSE(redacted(*rt, k)) << k;
  expect_views_match_the_log(*rt);
  EXPECT_EQ(read_view(*rt, "by_type").state.count("page.view/p1"), 0u);
  EXPECT_EQ(read_view(*rt, "by_type").state.count("page.view/p-late"), 1u);

  // Day 31: the sessions of day 0; not the one of day 10, nor other types.
  now_ = t0 + 31 * day;
  sweep = sweep_sync(*rt);
  ASSERT_TRUE(sweep) << sweep.error().to_string();
  EXPECT_EQ(sweep->expired, 7u);  // 6 sessions, p-late
  for (auto k : {"s0", "s1", "s2", "s3", "s4", "s-out", "p-late"}) EXPECT_TRUE(redacted(*rt, k)) << k;
  for (auto k : {"not-a-session", "o1", "s-late"}) EXPECT_FALSE(redacted(*rt, k)) << k;
  expect_views_match_the_log(*rt);
  EXPECT_EQ(read_view(*rt, "events").state.count("s0"), 0u);
  EXPECT_EQ(read_view(*rt, "events").state["s-late"]["data"]["secret"], "s-late");

  // The log says what went and why.
  auto rs = receipts(*rt);
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_NE(rs[0].data.find("\"rule\":\"page.view\""), std::string::npos) << rs[0].data;
  EXPECT_NE(rs[0].data.find("\"redacted\":2"), std::string::npos) << rs[0].data;
  EXPECT_EQ(rs[0].data.find("p1"), std::string::npos);
  for (auto& e : rs) EXPECT_FALSE(e.redacted);

  // Nothing more expired: no work, no receipt.
  sweep = sweep_sync(*rt);
  ASSERT_TRUE(sweep);
  EXPECT_EQ(sweep->expired, 0u);
  EXPECT_TRUE(sweep->receipts.empty());
  EXPECT_EQ(receipts(*rt).size(), 3u);

  // Metrics.
  auto m = rt->retention();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->expired, 9u);
  EXPECT_EQ(m->last_sweep_ms, t0 + 31 * day);
  ASSERT_EQ(m->rules.size(), 2u);
  EXPECT_EQ(m->rules[0].pattern, "session.*");
  EXPECT_EQ(m->rules[0].expired, 6u);
  EXPECT_EQ(m->rules[0].through, offset_of_["p-late"] - 2);  // up to s-late, not it
  EXPECT_EQ(m->rules[1].expired, 3u);
  EXPECT_EQ(rt->metrics().retention->expired, 9u);

  // Their idempotency keys went with them.
  rt->stop();
  auto env = environment::open(dir_.path());
  ASSERT_TRUE(env);
  auto l = event_log::open(**env);
  ASSERT_TRUE(l);
  EXPECT_FALSE((*l)->find_idempotency_key("idem-s0")->has_value());
  EXPECT_TRUE((*l)->find_idempotency_key("idem-s-late")->has_value());
  EXPECT_TRUE((*l)->find_idempotency_key("idem-o1")->has_value());
}

TEST_F(retention_test, ThePeriodicSweepFollowsTheLogClock) {
  auto rt = std::make_unique<runtime>(options(rules(), std::chrono::hours(1)));
  for (auto& v : views()) rt->add_view(v);
  ASSERT_TRUE(rt->start());
  append(*rt, "page.view", "p1");
  append(*rt, "order.placed", "o1");
  now_ = t0 + 8 * day;  // no call: the eraser reads the clock
  // The receipt comes once the views are rebuilt.
  for (int i = 0; i < 1000 && receipts(*rt).empty(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(receipts(*rt).size(), 1u);
  EXPECT_TRUE(redacted(*rt, "p1"));
  EXPECT_FALSE(redacted(*rt, "o1"));
  expect_views_match_the_log(*rt);
}

// A mark is durable: a restart does not sweep from the start again, and a
// sweep a crash interrupted (its request recorded, its events redacted, its
// views not rebuilt, no receipt) is finished by the next start.
TEST_F(retention_test, AnInterruptedSweepResumesAtTheNextStart) {
  {
    auto rt = start();
    for (int i = 0; i < 4; ++i) append(*rt, "session.login", "s" + std::to_string(i));
    append(*rt, "order.placed", "o1");
    ASSERT_TRUE(wait_sync(*rt, "by_type", rt->head()));
  }
  {  // as if the process died right after redacting
    auto env = environment::open(dir_.path());
    ASSERT_TRUE(env);
    auto l = event_log::open(**env);
    ASSERT_TRUE(l);
    ASSERT_TRUE((*l)->record_retention({{"session.*", 0, 5, t0 + 1}}));
    ASSERT_TRUE((*l)->redact_offsets({1, 2, 3, 4}));
  }
  now_ = t0 + day;  // nothing expired by the clock: only the recorded request is done
  auto rt = std::make_unique<runtime>(options(rules()));
  for (auto& v : views()) rt->add_view(v);
  ASSERT_TRUE(rt->start());
  std::vector<event> rs;
  for (int i = 0; i < 1000 && rs.empty(); ++i) {
    rs = receipts(*rt);
    if (rs.empty()) std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_NE(rs[0].data.find("\"through\":5"), std::string::npos) << rs[0].data;
  EXPECT_NE(rs[0].data.find("\"offsets\":[[1,4]]"), std::string::npos) << rs[0].data;
  for (int i = 0; i < 1000 && !rt->snapshot("by_type"); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(sweep_sync(*rt));
  expect_views_match_the_log(*rt);
  auto events = read_view(*rt, "events").state;
  EXPECT_EQ(events.count("o1"), 1u);
  for (auto k : {"s0", "s1", "s2", "s3"}) EXPECT_EQ(events.count(k), 0u) << k;
  ASSERT_TRUE(rt->retention());
  EXPECT_EQ(rt->retention()->rules[0].through, 5u);

  // After a plain restart the mark holds: the next sweep starts after it.
  offset_of_.clear();
  append(*rt, "session.login", "s-new");
  rt->stop();
  now_ = t0 + 40 * day;
  rt = start();
  EXPECT_TRUE(redacted(*rt, "s-new"));
  rs = receipts(*rt);
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_NE(rs[1].data.find("\"offsets\":[[" + std::to_string(offset_of_["s-new"])),
            std::string::npos)
      << rs[1].data;
  expect_views_match_the_log(*rt);
}

// A recorded sweep whose window holds none of its types: the start gated the
// views for it, and they are served again once it is done.
TEST_F(retention_test, AnInterruptedSweepThatFindsNothingStillServesTheViews) {
  {
    auto rt = start();
    append(*rt, "order.placed", "o1");
    ASSERT_TRUE(wait_sync(*rt, "by_type", rt->head()));
  }
  {
    auto env = environment::open(dir_.path());
    ASSERT_TRUE(env);
    auto l = event_log::open(**env);
    ASSERT_TRUE(l);
    ASSERT_TRUE((*l)->record_retention({{"session.*", 0, 1, t0 + 1}}));
  }
  auto rt = std::make_unique<runtime>(options(rules()));
  for (auto& v : views()) rt->add_view(v);
  ASSERT_TRUE(rt->start());
  ASSERT_TRUE(sweep_sync(*rt));
  EXPECT_TRUE(rt->snapshot("events").has_value());
  EXPECT_TRUE(receipts(*rt).empty());
  EXPECT_FALSE(redacted(*rt, "o1"));
  expect_views_match_the_log(*rt);
  EXPECT_EQ(rt->retention()->rules[0].through, 1u);
}

TEST_F(retention_test, BadRulesAreRefusedAtStart) {
  using std::chrono::hours;
  const std::vector<std::vector<retention_rule>> bad{
      {{"", hours(1)}},
      {{"*", hours(1)}},
      {{".*", hours(1)}},
      {{"session*", hours(1)}},
      {{"session.*.x", hours(1)}},
      {{"a b", hours(1)}},
      {{"derive.erasure", hours(1)}},
      {{"derive.*", hours(1)}},
      {{"derive.retention.*", hours(1)}},
      {{"session.*", hours(0)}},
      {{"session.*", -hours(1)}},
      {{"session.*", hours(1)}, {"session.login", hours(2)}},
      {{"a.b.*", hours(1)}, {"a.*", hours(2)}},
      {{"x", hours(1)}, {"x", hours(1)}},
  };
  for (const auto& rules : bad) {
    runtime rt(options(rules));
    auto st = rt.start();
    EXPECT_EQ(st.code(), errc::invalid_parameter) << rules[0].pattern;
    EXPECT_NE(st.message().find("retention rule"), std::string::npos) << st.message();
    EXPECT_FALSE(rt.running());
  }
  runtime zero_interval(options(rules(), std::chrono::milliseconds(0)));
  EXPECT_EQ(zero_interval.start().code(), errc::invalid_parameter);
  // Neighbours that share no type are fine.
  runtime ok(options({{"a.*", hours(1)}, {"ab.*", hours(1)}, {"a", hours(1)}}));
  EXPECT_TRUE(ok.start());
  // Applications cannot append the receipts' type.
  auto r = append_one(ok, retention_event_type, "k");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_event);
}

}  // namespace
}  // namespace derive::testing
