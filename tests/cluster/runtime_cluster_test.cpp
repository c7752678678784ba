// Derive nodes (in-process runtimes) on a 3-node JetStream cluster: appends
// through any node are acknowledged after local ingest, every node holds the
// same log and the same views, idempotency keys hold across nodes, and a
// node that restarts catches up from its position.

#include <atomic>
#include <future>
#include <thread>

#include "tests/actors/views_fixture.hpp"
#include "tests/cluster/nats_cluster.hpp"

namespace derive::testing {
namespace {

using namespace std::chrono_literals;

class runtime_cluster_test : public ::testing::Test {
 protected:
  runtime_options node_options(int i) const {
    runtime_options o;
    o.data_dir = dir_.sub("node" + std::to_string(i));
    o.storage.map_size = uint64_t{1} << 30;
    o.cluster.nats_urls = nats_.urls();
    o.cluster.stream = "docs";
    o.cluster.replicas = 3;
    o.cluster.publish_timeout = 20s;
    return o;
  }
  void start_node(int i) {
    nodes_[i] = std::make_unique<runtime>(node_options(i));
    nodes_[i]->add_view(docs_view());
    nodes_[i]->add_view(counts_view());
    nodes_[i]->add_view(tags_view());
    auto s = nodes_[i]->start();
    ASSERT_TRUE(s) << s.to_string();
  }
  runtime& node(int i) { return *nodes_[i]; }

  // Waits until every node's views reached `head`, then expects every node
  // to hold the same log and the same views as a recomputation from it.
  void expect_converged(uint64_t head) {
    std::vector<event> reference;
    for (int i = 0; i < 3; ++i) {
      for (const char* v : {"docs", "counts", "tags"})
        ASSERT_TRUE(wait_sync(node(i), v, head)) << "node " << i << " view " << v;
      auto log = node(i).read_log(1, 1'000'000);
      ASSERT_TRUE(log);
      ASSERT_EQ(log->size(), head) << "node " << i;
      if (i == 0) {
        reference = *log;
        continue;
      }
      for (size_t k = 0; k < head; ++k) ASSERT_EQ((*log)[k].to_json(), reference[k].to_json());
    }
    memory_view docs, counts;
    for (const auto& e : reference) {
      docs.apply(e.offset, [&](view_txn& tx) { docs_view().event_fn()(e, tx); });
      counts.apply(e.offset, [&](view_txn& tx) { counts_view().event_fn()(e, tx); });
    }
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(read_view(node(i), "docs").state, docs.state()) << "node " << i;
      EXPECT_EQ(read_view(node(i), "counts").state, counts.state()) << "node " << i;
      EXPECT_EQ(read_view(node(i), "tags").state, read_view(node(0), "tags").state);
    }
  }

  temp_dir dir_;
  nats_cluster nats_{3};
  std::unique_ptr<runtime> nodes_[3];
};

TEST_F(runtime_cluster_test, nodes_share_one_log_and_views) {
  for (int i = 0; i < 3; ++i) start_node(i);
  // Read-your-writes on the writing node at once, on another with after=.
  auto first = append_one(node(0), "doc.put", "d0", {{"tag", "red"}});
  ASSERT_TRUE(first) << first.error().to_string();
  EXPECT_EQ(first->first_offset, 1u);
  EXPECT_GE(node(0).head(), 1u);
  ASSERT_TRUE(wait_sync(node(2), "docs", first->first_offset, 10s));
  EXPECT_EQ(read_view(node(2), "docs").state.at("d0"), json({{"tag", "red"}}));

  // Several writers on every node at once, keys retried through another node.
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 6; ++w) {
    writers.emplace_back([&, w] {
      for (int k = 0; k < 40; ++k) {
        std::string key = "w" + std::to_string(w) + "-" + std::to_string(k);
        auto request = make_request({make_event("doc.put", key, {{"tag", k % 3 ? "blue" : "red"}})},
                                    "idem-" + key);
        auto a = append_sync(node(w % 3), request);
        auto b = append_sync(node((w + 1) % 3), request);  // a retry elsewhere
        if (!a || !b || !b->replayed || a->first_offset != b->first_offset) ++failures;
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(failures.load(), 0);
  const uint64_t head = 1 + 6 * 40;  // every retry appended nothing
  EXPECT_EQ(node(0).head() >= 1, true);
  expect_converged(head);
}

TEST_F(runtime_cluster_test, a_restarted_node_catches_up_and_a_new_one_starts_from_the_beginning) {
  start_node(0);
  start_node(1);
  for (int k = 0; k < 20; ++k) ASSERT_TRUE(append_one(node(k % 2), "doc.put", "a" + std::to_string(k)));
  node(1).stop();
  for (int k = 0; k < 20; ++k) ASSERT_TRUE(append_one(node(0), "doc.put", "b" + std::to_string(k)));
  start_node(1);  // the same data directory: resumes from its position
  start_node(2);  // a new one
  auto last = append_one(node(2), "doc.delete", "a0");
  ASSERT_TRUE(last);
  EXPECT_EQ(last->first_offset, 41u);
  expect_converged(41);
  EXPECT_EQ(read_view(node(1), "docs").state.count("a0"), 0u);
}

// What /v1/health and /metrics show: the stream's position, this node's, the lag.
TEST_F(runtime_cluster_test, reports_the_stream_position_and_lag) {
  start_node(0);
  for (int k = 0; k < 5; ++k) ASSERT_TRUE(append_one(node(0), "doc.put", "m" + std::to_string(k)));
  std::optional<cluster_metrics> c;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  do {  // the stream's state is refreshed about every second
    std::this_thread::sleep_for(50ms);
    c = node(0).cluster();
    ASSERT_TRUE(c);
  } while (c->stream_last_seq < 5 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(c->stream, "docs");
  EXPECT_TRUE(c->reachable);
  EXPECT_NE(c->server.find("nats://127.0.0.1:"), std::string::npos) << c->server;
  EXPECT_EQ(c->stream_first_seq, 1u);
  EXPECT_EQ(c->stream_last_seq, 5u);
  EXPECT_EQ(c->ingested_seq, 5u);
  EXPECT_EQ(c->lag, 0u);
  EXPECT_EQ(c->messages_published, 5u);
  EXPECT_EQ(c->messages_ingested, 5u);
  EXPECT_TRUE(c->error.empty());
  auto m = node(0).metrics();
  ASSERT_TRUE(m.cluster);
  EXPECT_EQ(m.cluster->ingested_seq, 5u);
  EXPECT_EQ(m.head, 5u);
  // Every server gone: not reachable (health: not ready).
  for (int i = 0; i < 3; ++i) nats_.kill(i);
  do {
    std::this_thread::sleep_for(50ms);
    c = node(0).cluster();
  } while (c->reachable && std::chrono::steady_clock::now() < deadline + 10s);
  EXPECT_FALSE(c->reachable);
  node(0).stop();
  EXPECT_FALSE(node(0).cluster());
}

TEST_F(runtime_cluster_test, forget_is_refused_with_a_stable_code) {
  start_node(0);
  ASSERT_TRUE(append_one(node(0), "doc.put", "d0", {{"tag", "red"}}));
  std::promise<result<erasure_receipt>> done;
  node(0).forget("someone", [&done](result<erasure_receipt> r) { done.set_value(std::move(r)); });
  auto r = done.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::not_supported);
  EXPECT_NE(r.error().message().find("encryption keys"), std::string::npos)
      << r.error().message();
}

}  // namespace
}  // namespace derive::testing
