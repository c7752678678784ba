// Cluster mode (docs/benchmarks.md, "cluster: appends through a JetStream
// stream"): durable appends/s through a 3-server R3 cluster next to the
// embedded log and next to raw JetStream publishing from the same client,
// and the cost of following the stream with 1, 2 and 3 nodes.
//
//   cluster_bench [--seconds S] [--clients K] [--events N]
// Starts its own nats-servers (/usr/sbin/nats-server) on 127.0.0.1.

#include <nats/nats.h>

#include <atomic>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <future>
#include <thread>

#include <derive/runtime.hpp>

#include "cluster/stream_log.hpp"
#include "core/append_check.hpp"
#include "tests/cluster/nats_cluster.hpp"

namespace {

using namespace derive;
using clock_type = std::chrono::steady_clock;

int seconds = 5;
int clients = 8;
int follow_events = 50000;

double since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

event_input payload(int i) {
  // About 100 bytes of event, like the raw publishing below.
  return {"bench.put", "k" + std::to_string(i), "", "{\"text\":\"" + std::string(60, 'x') + "\"}"};
}

// K clients each appending one event at a time for `seconds`: appends/s.
double runtime_rate(runtime& rt) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0}, failed{0};
  std::vector<std::thread> threads;
  const auto start = clock_type::now();
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      for (int i = 0; !stop; ++i) {
        std::promise<bool> p;
        append_request r;
        r.events.push_back(payload(c * 10'000'000 + i));
        rt.append(std::move(r), [&p](result<append_outcome> o) { p.set_value(bool(o)); });
        (p.get_future().get() ? done : failed)++;
      }
    });
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  if (failed) std::printf("  (%llu appends failed)\n", static_cast<unsigned long long>(failed.load()));
  return done / since(start);
}

double embedded_rate(const std::string& dir) {
  runtime_options o;
  o.data_dir = dir;
  runtime rt(o);
  rt.start();
  double r = runtime_rate(rt);
  rt.stop();
  return r;
}

double cluster_rate(const std::string& dir, const std::vector<std::string>& urls) {
  runtime_options o;
  o.data_dir = dir;
  o.cluster.nats_urls = urls;
  o.cluster.stream = "bench";
  o.cluster.replicas = 3;
  runtime rt(o);
  if (auto s = rt.start(); !s) {
    std::printf("cluster runtime: %s\n", s.to_string().c_str());
    return 0;
  }
  double r = runtime_rate(rt);
  rt.stop();
  return r;
}

// K threads each publishing ~100-byte messages synchronously (with a message
// id, as Derive does) to an R3 stream: acknowledged messages/s.
double raw_rate(const std::vector<std::string>& urls) {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  natsConnection_ConnectTo(&nc, urls.front().c_str());
  natsConnection_JetStream(&js, nc, nullptr);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subjects[] = {"raw.log"};
  cfg.Name = "raw";
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = 3;
  jsStreamInfo* si = nullptr;
  if (js_AddStream(&si, js, &cfg, nullptr, nullptr) == NATS_OK) jsStreamInfo_Destroy(si);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0};
  std::vector<std::thread> threads;
  const std::string body(100, 'x');
  const auto start = clock_type::now();
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      for (int i = 0; !stop; ++i) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        std::string id = std::to_string(c) + "-" + std::to_string(i);
        po.MsgId = id.c_str();
        jsPubAck* ack = nullptr;
        if (js_Publish(&ack, js, "raw.log", body.data(), static_cast<int>(body.size()), &po,
                       nullptr) == NATS_OK)
          ++done;
        if (ack) jsPubAck_Destroy(ack);
      }
    });
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double r = done / since(start);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return r;
}

// Publishes follow_events events (in groups of 100) to stream "follow", then
// lets `n` fresh nodes follow it at once: each node's ingest rate.
void follow_rates(const std::string& dir, const std::vector<std::string>& urls) {
  cluster_options o;
  o.nats_urls = urls;
  o.stream = "follow";
  o.replicas = 3;
  {
    auto env = environment::open(dir + "/writer", {});
    auto log = event_log::open(**env, {});
    auto stream = stream_log::open(**log, o);
    (*stream)->start([](uint64_t) {});
    for (int i = 0; i < follow_events; i += 100) {
      std::vector<checked_append> group;
      for (int k = 0; k < 100; ++k)
        group.push_back(checked_append_access::make({payload(i + k)}, "", ""));
      std::promise<void> p;
      (*stream)->publish(group, [&p](auto) { p.set_value(); });
      p.get_future().get();
    }
    (*stream)->stop();
  }
  // The first pass (one node, not reported) warms the servers' caches.
  for (int pass = 0; pass <= 3; ++pass) {
    const int n = std::max(pass, 1);
    std::vector<std::unique_ptr<environment>> envs;
    std::vector<std::unique_ptr<event_log>> logs;
    std::vector<std::unique_ptr<stream_log>> streams;
    for (int k = 0; k < n; ++k) {
      auto env = environment::open(dir + "/f" + std::to_string(pass) + "-" + std::to_string(k), {});
      envs.push_back(std::move(*env));
      auto log = event_log::open(*envs.back(), {});
      logs.push_back(std::move(*log));
    }
    const auto start = clock_type::now();
    std::vector<double> took(n, 0);
    for (int k = 0; k < n; ++k) {
      auto stream = stream_log::open(*logs[k], o);
      streams.push_back(std::move(*stream));
      streams.back()->start([&, k](uint64_t head) {
        if (head == static_cast<uint64_t>(follow_events) && took[k] == 0) took[k] = since(start);
      });
    }
    for (;;) {
      bool all = true;
      for (int k = 0; k < n; ++k) all = all && logs[k]->head() == uint64_t(follow_events);
      if (all) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const double total = since(start);
    for (auto& s : streams) s->stop();
    if (pass == 0) continue;
    std::printf("  %d node%s following: %.0f events/s per node (%d events in %.2f s), "
                "%.0f events/s ingested in all\n",
                n, n > 1 ? "s" : "", follow_events / total, follow_events, total,
                n * follow_events / total);
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--clients")) clients = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--events")) follow_events = std::atoi(argv[i + 1]);
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // nats-servers fork from this process
  derive::testing::scratch_dir dir;
  std::printf("cluster_bench: %d clients, %d s per run, one event (~100 bytes) per append\n",
              clients, seconds);
  const double embedded = embedded_rate(dir.sub("embedded"));
  derive::testing::nats_cluster nats(3);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // the meta leader election
  const double raw = raw_rate(nats.urls());
  const double cluster = cluster_rate(dir.sub("cluster"), nats.urls());
  std::printf("  embedded log (durability full):         %8.0f appends/s\n", embedded);
  std::printf("  raw JetStream js_Publish (R3, sync):    %8.0f acks/s\n", raw);
  std::printf("  cluster mode (3 servers, R3):           %8.0f appends/s (%.2fx raw, %.2fx embedded)\n",
              cluster, cluster / raw, cluster / embedded);
  follow_rates(dir.sub("follow"), nats.urls());
  return 0;
}
