// The log on a JetStream stream (cluster/stream_log.hpp) against a real
// nats-server: appends through any node get the same offsets everywhere,
// idempotency keys hold across nodes, a message the stream stored twice is
// ingested once, a node resumes from its position, and a node that would
// have to skip messages, or whose stream history changed, says so instead.

#include "cluster/stream_log.hpp"

#include <nats/nats.h>

#include <future>
#include <memory>

#include "cluster/stream_message.hpp"
#include "core/append_check.hpp"
#include <gtest/gtest.h>

#include "tests/cluster/nats_cluster.hpp"

namespace derive {
namespace {

using testing::nats_cluster;

checked_append request(std::vector<std::string> types, std::string key = "") {
  std::vector<event_input> events;
  for (auto& t : types) events.push_back({t, "k-" + t, "", "{\"t\":\"" + t + "\"}"});
  std::string fingerprint = key.empty() ? "" : "fp-" + std::to_string(types.size());
  return checked_append_access::make(std::move(events), std::move(key), std::move(fingerprint));
}

// One node: an environment, its log and its stream_log.
struct node {
  std::string dir;
  std::unique_ptr<environment> env;
  std::unique_ptr<event_log> log;
  std::unique_ptr<stream_log> stream;

  explicit node(std::string d) : dir(std::move(d)) {
    auto e = environment::open(dir, {});
    EXPECT_TRUE(e) << e.error().to_string();
    env = std::move(*e);
    auto l = event_log::open(*env, {});
    EXPECT_TRUE(l) << l.error().to_string();
    log = std::move(*l);
  }
  ~node() { close(); }

  status follow(cluster_options options) {
    auto s = stream_log::open(*log, std::move(options));
    if (!s) return s.error();
    stream = std::move(*s);
    stream->start([](uint64_t) {});
    return status::ok();
  }
  void close() {
    if (stream) stream->stop();
    stream.reset();
  }

  std::vector<result<append_outcome>> publish(std::vector<checked_append> group) {
    std::promise<std::vector<result<append_outcome>>> p;
    auto f = p.get_future();
    stream->publish(group, [&p](std::vector<result<append_outcome>> r) { p.set_value(std::move(r)); });
    return f.get();
  }

  // Waits until this node has ingested up to `head`.
  bool wait_head(uint64_t head) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (log->head() < head) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  std::vector<event> events() {
    auto r = log->read(1, 1'000'000);
    EXPECT_TRUE(r);
    return r ? *r : std::vector<event>{};
  }
};

// A raw JetStream client of the test's server.
struct raw_client {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  explicit raw_client(const std::string& url) {
    EXPECT_EQ(natsConnection_ConnectTo(&nc, url.c_str()), NATS_OK);
    EXPECT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  }
  ~raw_client() {
    if (js) jsCtx_Destroy(js);
    if (nc) natsConnection_Destroy(nc);
  }
  // Publishes `body` to `subject` with header `id_header: id`.
  void publish(const std::string& subject, const std::string& body, const char* id_header,
               const std::string& id) {
    natsMsg* msg = nullptr;
    ASSERT_EQ(natsMsg_Create(&msg, subject.c_str(), nullptr, body.data(),
                             static_cast<int>(body.size())),
              NATS_OK);
    ASSERT_EQ(natsMsgHeader_Set(msg, id_header, id.c_str()), NATS_OK);
    jsPubAck* ack = nullptr;
    EXPECT_EQ(js_PublishMsg(&ack, js, msg, nullptr, nullptr), NATS_OK);
    if (ack) jsPubAck_Destroy(ack);
    natsMsg_Destroy(msg);
  }
  // Stores the stream's message at `seq` once more, headers and body alike:
  // what a publish retried after its first try was stored leaves behind.
  void store_again(const std::string& stream, uint64_t seq) {
    natsMsg* msg = nullptr;
    ASSERT_EQ(js_GetMsg(&msg, js, stream.c_str(), seq, nullptr, nullptr), NATS_OK);
    const char* id = nullptr;
    ASSERT_EQ(natsMsgHeader_Get(msg, "Derive-Msg-Id", &id), NATS_OK);
    const std::string copy_id = id;
    publish(natsMsg_GetSubject(msg),
            std::string(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))),
            "Derive-Msg-Id", copy_id);
    natsMsg_Destroy(msg);
  }
};

class stream_log_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = "/tmp/derive-cluster-XXXXXX";
    dir_ = ::mkdtemp(pattern.data());
  }
  void TearDown() override {
    nodes_.clear();
    std::filesystem::remove_all(dir_);
  }
  node& add_node() {
    nodes_.push_back(std::make_unique<node>(dir_ + "/node" + std::to_string(nodes_.size())));
    return *nodes_.back();
  }
  cluster_options options(std::string stream = "derive") const {
    cluster_options o;
    o.nats_urls = nats_.urls();
    o.stream = std::move(stream);
    o.publish_timeout = std::chrono::seconds(10);
    return o;
  }

  nats_cluster nats_{1};
  std::string dir_;
  std::vector<std::unique_ptr<node>> nodes_;
};

void expect_same_log(const std::vector<event>& a, const std::vector<event>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].offset, b[i].offset);
    EXPECT_EQ(a[i].ts, b[i].ts);
    EXPECT_EQ(a[i].to_json(), b[i].to_json());
  }
}

TEST(stream_message_test, round_trips_a_group) {
  std::vector<checked_append> group;
  group.push_back(request({"a", "b"}, "key-1"));
  group.push_back(request({"c"}));
  auto m = decode_stream_message(encode_stream_message(group, -42));
  ASSERT_TRUE(m) << m.error().to_string();
  EXPECT_EQ(m->ts, -42);
  ASSERT_EQ(m->group.size(), 2u);
  EXPECT_EQ(m->group[0].idempotency_key(), "key-1");
  EXPECT_EQ(m->group[0].fingerprint(), "fp-2");
  ASSERT_EQ(m->group[0].events().size(), 2u);
  EXPECT_EQ(m->group[0].events()[1].type, "b");
  EXPECT_EQ(m->group[0].events()[1].data, "{\"t\":\"b\"}");
  EXPECT_EQ(m->group[1].events()[0].key, "k-c");
  EXPECT_EQ(event_count(m->group), 3u);
  auto body = encode_stream_message(group, 1);
  EXPECT_FALSE(decode_stream_message(body.substr(0, body.size() - 1)));
  EXPECT_FALSE(decode_stream_message(body + "x"));
  EXPECT_EQ(decode_stream_message("nonsense").error().code(), errc::corruption);
}

TEST_F(stream_log_test, appends_are_acknowledged_after_local_ingest) {
  auto& a = add_node();
  ASSERT_TRUE(a.follow(options()));
  std::vector<checked_append> group;
  group.push_back(request({"x", "y"}));
  group.push_back(request({"z"}, "key-z"));
  auto out = a.publish(std::move(group));
  ASSERT_EQ(out.size(), 2u);
  ASSERT_TRUE(out[0]) << out[0].error().to_string();
  EXPECT_EQ(out[0]->first_offset, 1u);
  EXPECT_EQ(out[0]->count, 2u);
  ASSERT_TRUE(out[1]);
  EXPECT_EQ(out[1]->first_offset, 3u);
  // Read-your-writes: ingested (and durable) before the answer.
  EXPECT_EQ(a.log->head(), 3u);
  EXPECT_EQ(a.log->stream_seq(), 1u);
  auto again = a.publish({request({"z"}, "key-z")});
  ASSERT_TRUE(again[0]);
  EXPECT_TRUE(again[0]->replayed);
  EXPECT_EQ(again[0]->first_offset, 3u);
  EXPECT_EQ(a.log->head(), 3u);
  EXPECT_EQ(a.log->stream_seq(), 2u);  // the replay's message counts in the position
  auto st = a.stream->state();
  EXPECT_TRUE(st.reachable);
  EXPECT_EQ(st.ingested_seq, 2u);
  EXPECT_TRUE(st.error.empty());
}

TEST_F(stream_log_test, nodes_agree_on_offsets_and_idempotency) {
  auto& a = add_node();
  auto& b = add_node();
  ASSERT_TRUE(a.follow(options()));
  ASSERT_TRUE(b.follow(options()));
  auto first = a.publish({request({"a1"}, "shared")});
  ASSERT_TRUE(first[0]);
  EXPECT_FALSE(first[0]->replayed);
  auto second = b.publish({request({"b1", "b2"})});
  ASSERT_TRUE(second[0]);
  EXPECT_EQ(second[0]->first_offset, 2u);
  // The same key through the other node: the first outcome, once.
  auto retry = b.publish({request({"a1"}, "shared")});
  ASSERT_TRUE(retry[0]);
  EXPECT_TRUE(retry[0]->replayed);
  EXPECT_EQ(retry[0]->first_offset, first[0]->first_offset);
  // The same key with another body: refused on every node alike.
  auto reused = a.publish({request({"a1", "a2"}, "shared")});
  ASSERT_FALSE(reused[0]);
  EXPECT_EQ(reused[0].error().code(), errc::idempotency_key_reused);
  ASSERT_TRUE(a.wait_head(3));
  ASSERT_TRUE(b.wait_head(3));
  ASSERT_TRUE(a.wait_head(3));
  expect_same_log(a.events(), b.events());
  EXPECT_EQ(a.events().size(), 3u);
}

TEST_F(stream_log_test, a_node_resumes_from_its_position) {
  auto& a = add_node();
  auto& b = add_node();
  ASSERT_TRUE(a.follow(options()));
  ASSERT_TRUE(b.follow(options()));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a.publish({request({"e" + std::to_string(i)})})[0]);
  ASSERT_TRUE(b.wait_head(5));
  b.close();
  b.log.reset();
  b.env.reset();
  for (int i = 5; i < 10; ++i) ASSERT_TRUE(a.publish({request({"e" + std::to_string(i)})})[0]);
  node again(b.dir);
  EXPECT_EQ(again.log->stream_seq(), 5u);
  ASSERT_TRUE(again.follow(options()));
  ASSERT_TRUE(again.wait_head(10));
  auto out = again.publish({request({"last"})});
  ASSERT_TRUE(out[0]);
  EXPECT_EQ(out[0]->first_offset, 11u);
  ASSERT_TRUE(a.wait_head(11));
  expect_same_log(a.events(), again.events());
  // A new node starts from the stream's beginning.
  auto& c = add_node();
  ASSERT_TRUE(c.follow(options()));
  ASSERT_TRUE(c.wait_head(11));
  expect_same_log(a.events(), c.events());
}

TEST_F(stream_log_test, refuses_an_embedded_log) {
  auto& a = add_node();
  ASSERT_TRUE(a.log->append(request({"local"})));
  auto s = a.follow(options());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.code(), errc::invalid_parameter);
  EXPECT_NE(s.message().find("embedded log"), std::string::npos) << s.message();
}

// A stream whose limits dropped messages a new node needs: the node says so
// and ingests nothing, instead of starting in the middle.
TEST_F(stream_log_test, a_node_that_would_skip_messages_reports_it) {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, nats_.url(0).c_str()), NATS_OK);
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subjects[] = {"short.log"};
  cfg.Name = "short";
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.MaxMsgs = 2;  // keeps the last two messages only
  jsStreamInfo* si = nullptr;
  ASSERT_EQ(js_AddStream(&si, js, &cfg, nullptr, nullptr), NATS_OK);
  jsStreamInfo_Destroy(si);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);

  auto& a = add_node();
  ASSERT_TRUE(a.follow(options("short")));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(a.publish({request({"e" + std::to_string(i)})})[0]);
  auto& b = add_node();
  ASSERT_TRUE(b.follow(options("short")));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (b.stream->state().error.empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto st = b.stream->state();
  EXPECT_NE(st.error.find("no longer holds sequences 1..2"), std::string::npos) << st.error;
  EXPECT_EQ(b.log->head(), 0u);
  auto refused = b.publish({request({"x"})});
  ASSERT_FALSE(refused[0]);
  EXPECT_EQ(refused[0].error().code(), errc::unavailable);
}

// A publish the stream stored twice (its retry after a lost acknowledgement)
// is one set of events: the copy appends nothing on any node, so the
// publisher's offsets (the first copy's) are every node's and the next
// append follows them.
TEST_F(stream_log_test, a_message_stored_twice_is_ingested_once_on_every_node) {
  auto& a = add_node();
  ASSERT_TRUE(a.follow(options()));
  auto first = a.publish({request({"x", "y"})});  // no idempotency key
  ASSERT_TRUE(first[0]);
  EXPECT_EQ(first[0]->first_offset, 1u);
  raw_client raw(nats_.url(0));
  raw.store_again("derive", 1);  // sequence 2
  auto next = a.publish({request({"z"})});  // sequence 3
  ASSERT_TRUE(next[0]);
  EXPECT_EQ(next[0]->first_offset, 3u);
  EXPECT_EQ(a.log->stream_seq(), 3u);
  EXPECT_EQ(a.stream->state().duplicates_dropped, 1u);
  auto& b = add_node();  // from the stream's beginning
  ASSERT_TRUE(b.follow(options()));
  ASSERT_TRUE(b.wait_head(3));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (b.log->stream_seq() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(b.log->head(), 3u);
  EXPECT_EQ(b.stream->state().duplicates_dropped, 1u);
  expect_same_log(a.events(), b.events());
  EXPECT_TRUE(a.stream->state().error.empty());
  EXPECT_TRUE(b.stream->state().error.empty());
}

// A stream whose history is no longer the one a node ingested (here the
// stream is recreated with other messages; in a cluster, a JetStream replica
// that skipped or renumbered messages): the node must not resume by
// sequence alone, which would silently make its log differ from the others'.
// It compares the stream's message at its position and stops following.
TEST_F(stream_log_test, a_node_whose_stream_history_changed_stops_following) {
  auto& a = add_node();
  ASSERT_TRUE(a.follow(options("fork")));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.publish({request({"e" + std::to_string(i)})})[0]);
  a.close();
  const std::string dir = a.dir;
  nodes_.clear();

  {
    raw_client raw(nats_.url(0));
    ASSERT_EQ(js_DeleteStream(raw.js, "fork", nullptr, nullptr), NATS_OK);
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subjects[] = {"fork.log"};
    cfg.Name = "fork";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    jsStreamInfo* si = nullptr;
    ASSERT_EQ(js_AddStream(&si, raw.js, &cfg, nullptr, nullptr), NATS_OK);
    jsStreamInfo_Destroy(si);
    for (int i = 0; i < 5; ++i) {
      std::vector<checked_append> group;
      group.push_back(request({"other" + std::to_string(i)}));
      raw.publish("fork.log", encode_stream_message(group, 1'000 + i), "Derive-Msg-Id",
                  "other-" + std::to_string(i));
    }
  }

  node again(dir);
  EXPECT_EQ(again.log->stream_seq(), 3u);
  ASSERT_TRUE(again.follow(options("fork")));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (again.stream->state().error.empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto st = again.stream->state();
  EXPECT_NE(st.error.find("history changed"), std::string::npos) << st.error;
  EXPECT_NE(st.error.find("'other-2' at sequence 3"), std::string::npos) << st.error;
  EXPECT_EQ(again.log->stream_seq(), 3u);  // nothing of the other history ingested
  EXPECT_EQ(again.log->head(), 3u);
  auto refused = again.publish({request({"x"})});
  ASSERT_FALSE(refused[0]);
  EXPECT_EQ(refused[0].error().code(), errc::unavailable);
}

// The check of the stream's history asks the server every second: a server
// that does not answer for a while (frozen: the requests time out) or that
// restarts is not a changed history, and the node follows on afterwards.
TEST_F(stream_log_test, a_node_rides_out_a_frozen_and_a_restarted_server) {
  auto& a = add_node();
  ASSERT_TRUE(a.follow(options()));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.publish({request({"e" + std::to_string(i)})})[0]);
  nats_.pause(0);
  std::this_thread::sleep_for(std::chrono::seconds(5));  // a few polls time out
  nats_.resume(0);
  ASSERT_TRUE(a.publish({request({"after-pause"})})[0]);
  // Let the server write what it acknowledged before it is killed.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  nats_.kill(0);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // polls fail: no server
  nats_.start(0);
  auto out = a.publish({request({"after-restart"})});
  ASSERT_TRUE(out[0]) << out[0].error().to_string();
  EXPECT_EQ(out[0]->first_offset, 5u);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // polls after the restart
  auto st = a.stream->state();
  EXPECT_TRUE(st.error.empty()) << st.error;
  EXPECT_EQ(a.log->head(), 5u);
}

}  // namespace
}  // namespace derive
