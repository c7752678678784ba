// SIGKILL in a cluster, under load from clients on every node: the stream
// leader's nats-server five times (each time once the server killed before
// is back and current), then a Derive node five times. Every
// acknowledged append is present exactly once, in the same order, on every
// node; retries with the same idempotency key through another node append
// once; every node's view equals a recomputation from the log.
// A failed run stops its writers first, then prints each node's health and
// the tail of every server's and node's log, and keeps their directories.

#include <nats/nats.h>

#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "tests/cluster/nats_cluster.hpp"
#include "tests/web/web_client.hpp"

namespace derive::testing {
namespace {

using webtest::http_get;
using webtest::http_post;
using webtest::json;
using namespace std::chrono_literals;

constexpr int node_count = 3;
const char* const stream_name = "killtest";

// A cluster_node process (tests/cluster/cluster_node.cpp).
class derive_node {
 public:
  derive_node(std::string dir, std::string urls) : dir_(std::move(dir)), urls_(std::move(urls)) {
    port_ = static_cast<uint16_t>(free_port());
  }
  uint16_t port() const { return port_; }
  bool running() const { return process_.has_value(); }

  void start() {
    const std::string log = dir_ + ".log";
    process_.emplace(child_process::exec_logged(
        {CLUSTER_NODE_BINARY, std::to_string(port_), dir_, urls_, stream_name}, log));
    ASSERT_TRUE(process_->started()) << "could not start " << CLUSTER_NODE_BINARY;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (http_get(port_, "/v1/health").status != 200) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "node did not start; see " << log;
      std::this_thread::sleep_for(50ms);
    }
  }
  // SIGKILLs the node (no-op when not running).
  void kill() { process_.reset(); }
  std::string log_path() const { return dir_ + ".log"; }

 private:
  std::string dir_, urls_;
  uint16_t port_ = 0;
  std::optional<child_process> process_;  // killed and reaped when reset
};

// The server that leads the stream, by name ("" when unknown now).
std::string stream_leader(const nats_cluster& nats) {
  for (int i = 0; i < nats.size(); ++i) {
    if (!nats.running(i)) continue;
    natsConnection* nc = nullptr;
    if (natsConnection_ConnectTo(&nc, nats.url(i).c_str()) != NATS_OK) continue;
    jsCtx* js = nullptr;
    jsStreamInfo* si = nullptr;
    std::string leader;
    if (natsConnection_JetStream(&js, nc, nullptr) == NATS_OK &&
        js_GetStreamInfo(&si, js, stream_name, nullptr, nullptr) == NATS_OK) {
      if (si->Cluster && si->Cluster->Leader) leader = si->Cluster->Leader;
      jsStreamInfo_Destroy(si);
    }
    if (js) jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    if (!leader.empty()) return leader;
  }
  return "";
}

// Waits until the stream has a leader and every other replica is current:
// a server that was just restarted is not yet a replica to count on, and
// killing the leader before it caught up would leave a quorum with one
// replica behind (nats-server 2.9 then elected no stream leader for minutes,
// its log repeating "Catchup for stream ... stalled"): two failures, where
// R3 promises to survive one.
::testing::AssertionResult wait_replicas_current(const nats_cluster& nats) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  std::string seen = "no answer";
  while (std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < nats.size(); ++i) {
      if (!nats.running(i)) continue;
      natsConnection* nc = nullptr;
      if (natsConnection_ConnectTo(&nc, nats.url(i).c_str()) != NATS_OK) continue;
      jsCtx* js = nullptr;
      jsStreamInfo* si = nullptr;
      bool current = false;
      if (natsConnection_JetStream(&js, nc, nullptr) == NATS_OK &&
          js_GetStreamInfo(&si, js, stream_name, nullptr, nullptr) == NATS_OK) {
        const jsClusterInfo* c = si->Cluster;
        current = c && c->Leader && c->ReplicasLen == nats.size() - 1;
        seen = std::string("leader ") + (c && c->Leader ? c->Leader : "none");
        for (int r = 0; c && r < c->ReplicasLen; ++r) {
          const jsPeerInfo* p = c->Replicas[r];
          current = current && p->Current && !p->Offline;
          seen += std::string(", ") + p->Name + (p->Current ? " current" : " behind") +
                  " (lag " + std::to_string(p->Lag) + ")";
        }
        jsStreamInfo_Destroy(si);
      }
      if (js) jsCtx_Destroy(js);
      natsConnection_Destroy(nc);
      if (current) return ::testing::AssertionSuccess();
      break;
    }
    std::this_thread::sleep_for(200ms);
  }
  return ::testing::AssertionFailure() << "the stream's replicas are not all current after 60 s: "
                                       << seen;
}

struct acked {
  uint64_t offset;
  int writer;
};

class cluster_kill_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string urls;
    for (auto& u : nats_.urls()) urls += (urls.empty() ? "" : ",") + u;
    for (int i = 0; i < node_count; ++i)
      nodes_.push_back(std::make_unique<derive_node>(dir_.sub("node" + std::to_string(i)), urls));
    for (auto& n : nodes_) n->start();
  }

  // Runs after a failed ASSERT too: writers still running are stopped and
  // joined (a joinable std::thread would terminate the process and lose the
  // diagnosis), then a failure is reported with what a diagnosis needs.
  void TearDown() override {
    stop_writers();
    if (HasFailure()) report_failure();
  }

  void start_writers() {
    for (int w = 0; w < node_count; ++w) writers_.emplace_back([this, w] { write(w); });
  }
  void stop_writers() {
    stop_ = true;
    for (auto& t : writers_)
      if (t.joinable()) t.join();
    writers_.clear();
  }

  void report_failure() {
    std::ostringstream out;
    for (int i = 0; i < node_count; ++i) {
      auto h = http_get(nodes_[i]->port(), "/v1/health");
      out << "node " << i << " /v1/health: " << h.status << " " << h.body << "\n";
    }
    for (int i = 0; i < nats_.size(); ++i)
      out << "---- nats-server " << nats_.name(i) << " (last 60 lines)\n" << nats_.log_tail(i, 60);
    for (int i = 0; i < node_count; ++i)
      out << "---- node " << i << " (last 30 lines)\n" << file_tail(nodes_[i]->log_path(), 30);
    out << "kept: nats-server directory " << nats_.keep() << ", nodes' directory " << dir_.keep()
        << "\n";
    ADD_FAILURE() << "diagnosis of the failed run:\n" << out.str();
  }

  size_t acked_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_.size();
  }

  // Progress between kills: some appends acknowledged after each restart.
  ::testing::AssertionResult wait_progress(const char* after) {
    const size_t before = acked_count();
    // Generous: a leader election and the reconnects take seconds on a loaded
    // machine (it once took over 20 s with the whole suite running at -j2).
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (acked_count() < before + 20) {
      if (std::chrono::steady_clock::now() > deadline)
        return ::testing::AssertionFailure() << "no appends after " << after << " in 60 s ("
                                             << acked_count() - before << " of 20)";
      std::this_thread::sleep_for(20ms);
    }
    return ::testing::AssertionSuccess();
  }

  // Writer w appends doc.put events with an idempotency key each, to node w
  // first and to the next node on a failure; every 10th acknowledged append
  // is sent again through another node and must replay.
  void write(int w) {
    for (int n = 0; !stop_; ++n) {
      const std::string key = "w" + std::to_string(w) + "-" + std::to_string(n);
      const std::string body = json{{"type", "doc.put"}, {"key", key}, {"data", {{"n", n}}}}.dump();
      uint64_t offset = 0;
      for (int attempt = 0; offset == 0 && !stop_; ++attempt) {
        auto r = http_post(nodes_[(w + attempt) % node_count]->port(), "/v1/events", body,
                           {{"Idempotency-Key", key}});
        if (r.status == 201 || r.status == 200) offset = r.body_json().value("offset", uint64_t{0});
        else std::this_thread::sleep_for(20ms);
      }
      if (offset == 0) return;  // stopping with one append unacknowledged
      {
        std::lock_guard<std::mutex> lock(mu_);
        acked_[key] = {offset, w};
      }
      if (n % 10 == 9) {
        auto again = http_post(nodes_[(w + 1) % node_count]->port(), "/v1/events", body,
                               {{"Idempotency-Key", key}});
        if (again.status != 0 && again.status < 500) {
          EXPECT_EQ(again.status, 200) << again.body;
          EXPECT_EQ(again.body_json().value("offset", uint64_t{0}), offset) << key;
        }
      }
    }
  }

  // Every event of node i's log, through GET /v1/events.
  std::vector<json> read_log(int i) {
    std::vector<json> out;
    for (uint64_t from = 1;;) {
      auto r = http_get(nodes_[i]->port(), "/v1/events?from=" + std::to_string(from) + "&limit=1000");
      EXPECT_EQ(r.status, 200) << r.body;
      if (r.status != 200) return out;
      auto events = r.body_json().at("events");
      if (events.empty()) return out;
      for (auto& e : events) out.push_back(e);
      from = out.back().at("offset").get<uint64_t>() + 1;
    }
  }

  // The docs view of node i at `offset`, every page.
  std::map<std::string, json> read_view(int i, uint64_t offset) {
    std::map<std::string, json> state;
    std::string start;
    for (;;) {
      auto r = http_get(nodes_[i]->port(), "/v1/views/docs?limit=10000&after=" +
                                               std::to_string(offset) + "&start=" + start);
      EXPECT_EQ(r.status, 200) << r.body;
      if (r.status != 200) return state;
      auto body = r.body_json();
      EXPECT_EQ(body.value("offset", uint64_t{0}), offset);
      for (auto& item : body.at("items")) state[item.at("key")] = item.at("value");
      if (body.at("next").is_null()) return state;
      start = body.at("next").get<std::string>();
    }
  }

  uint64_t head(int i) {
    auto r = http_get(nodes_[i]->port(), "/v1/health");
    return r.status == 200 ? r.body_json().value("head", uint64_t{0}) : 0;
  }

  scratch_dir dir_;
  nats_cluster nats_{3};
  std::vector<std::unique_ptr<derive_node>> nodes_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> writers_;
  std::mutex mu_;
  std::map<std::string, acked> acked_;
};

TEST_F(cluster_kill_test, acknowledged_appends_survive_killed_servers_and_nodes) {
  start_writers();
  ASSERT_TRUE(wait_progress("start"));
  for (int round = 0; round < 5; ++round) {
    const int leader = nats_.index_of(stream_leader(nats_));
    ASSERT_GE(leader, 0) << "no stream leader";
    nats_.kill(leader);
    std::this_thread::sleep_for(500ms);
    ASSERT_TRUE(wait_progress("killing the stream leader"));  // the others elect a new one
    nats_.start(leader);
    ASSERT_TRUE(wait_replicas_current(nats_));
  }
  for (int round = 0; round < 5; ++round) {
    auto& node = *nodes_[round % node_count];
    node.kill();
    std::this_thread::sleep_for(300ms);
    ASSERT_TRUE(wait_progress("killing a node"));  // its writer goes through another node
    ASSERT_NO_FATAL_FAILURE(node.start());
  }
  ASSERT_TRUE(wait_progress("the last restart"));
  stop_writers();

  // Every node catches up with the others: the same log, in the same order.
  uint64_t last = 0;
  for (int i = 0; i < node_count; ++i) last = std::max(last, head(i));
  for (int i = 0; i < node_count; ++i) {
    auto r = http_get(nodes_[i]->port(), "/v1/views/docs?limit=1&after=" + std::to_string(last) +
                                             "&timeout_ms=20000");
    ASSERT_EQ(r.status, 200) << r.body;
  }
  auto reference = read_log(0);
  ASSERT_EQ(reference.size(), last);
  for (int i = 1; i < node_count; ++i) EXPECT_EQ(read_log(i), reference) << "node " << i;

  // Each acknowledged append exactly once, at its acknowledged offset.
  std::map<std::string, int> seen;
  for (auto& e : reference) ++seen[e.at("key").get<std::string>()];
  for (auto& [key, a] : acked_) {
    EXPECT_EQ(seen[key], 1) << key;
    ASSERT_LE(a.offset, reference.size());
    EXPECT_EQ(reference[a.offset - 1].at("key"), key);
  }
  for (auto& [key, n] : seen) EXPECT_EQ(n, 1) << key << " appended more than once";

  // Every node's view equals the recomputation from the log.
  std::map<std::string, json> docs;
  for (auto& e : reference) docs[e.at("key").get<std::string>()] = e.at("data");
  for (int i = 0; i < node_count; ++i) EXPECT_EQ(read_view(i, last), docs) << "node " << i;
  std::cout << "acknowledged " << acked_.size() << " appends, log of " << reference.size()
            << " events\n";
}

}  // namespace
}  // namespace derive::testing
