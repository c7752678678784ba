#include <derive/runtime.hpp>

#include <iterator>
#include <limits>
#include <utility>

#include "actors/eraser.hpp"
#include "actors/runtime_state.hpp"

// runtime::metrics(): a snapshot of cheap counters (atomics), for /metrics.

namespace derive {

namespace {

view_info views_info_of(const runtime::impl& rt, const view_slot& served, uint64_t head) {
  auto info = served.info(head, rt.options.live_batch);
  if (!rt.running || served.group >= rt.groups.size()) return info;
  for (auto* s : rt.groups[served.group].slots)
    info.versions.push_back(s->version_info(rt.source_head(*s), rt.options.live_batch));
  return info;
}

// REQUIRES: storage_mu held.
std::optional<cluster_metrics> cluster_locked(const runtime::impl& rt) {
  if (!rt.stream) return std::nullopt;
  auto st = rt.stream->state();
  cluster_metrics c;
  c.stream = rt.options.cluster.stream;
  c.reachable = st.reachable;
  c.server = st.server;
  c.stream_first_seq = st.stream_first_seq;
  c.stream_last_seq = st.stream_last_seq;
  c.ingested_seq = st.ingested_seq;
  c.lag = st.lag;
  c.messages_published = st.messages_published;
  c.publish_retries = st.publish_retries;
  c.messages_ingested = st.messages_ingested;
  c.duplicates_dropped = st.duplicates_dropped;
  c.error = st.error;
  return c;
}

}  // namespace

runtime_metrics runtime::metrics() const {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  runtime_metrics m;
  m.head = impl_->log ? impl_->log->head() : 0;
  auto load = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  m.append_requests = load(impl_->counters.requests);
  m.append_failures = load(impl_->counters.failures);
  m.appended_events = load(impl_->counters.events);
  m.append_commits = load(impl_->counters.commits);
  m.append_latency_count = load(impl_->counters.latency_count);
  m.append_latency_sum_us = load(impl_->counters.latency_sum_us);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < sequencer_counters::latency_buckets; ++i) {
    cumulative += load(impl_->counters.latency_histogram[i]);
    uint64_t bound = i < std::size(sequencer_counters::latency_bounds_us)
                         ? sequencer_counters::latency_bounds_us[i]
                         : std::numeric_limits<uint64_t>::max();
    m.append_latency_buckets.emplace_back(bound, cumulative);
  }
  if (impl_->erasure && !impl_->options.retention.empty())
    m.retention = impl_->erasure->retention();
  if (impl_->subs) {
    m.subscriptions = impl_->subs->total();
    m.hub_batches = impl_->subs->delivered_batches();
    m.hub_lost = impl_->subs->lost_batches();
  }
  for (auto& slot : impl_->slots) {
    if (impl_->find(slot->name()) != slot.get()) continue;  // one entry per view: the served
    auto info = views_info_of(*impl_, *slot, m.head);
    view_metrics v;
    v.name = info.name;
    v.version = info.version;
    v.offset = info.offset;
    v.lag = info.lag;
    v.status = info.status;
    v.applied = load(slot->applied);
    v.commits = load(slot->commits);
    v.bytes_written = load(slot->bytes_written);
    v.largest_value = load(slot->largest_value);
    v.versions = std::move(info.versions);
    m.views.push_back(std::move(v));
  }
  m.cluster = cluster_locked(*impl_);
  const std::pair<const char*, environment*> envs[] = {{"log", impl_->env.get()},
                                                       {"views", impl_->views_env.get()}};
  for (auto [name, env] : envs) {
    if (!impl_->running || !env) continue;
    storage_metrics s;
    s.environment = name;
    if (auto space = env->space()) {
      s.file_bytes = space->file_bytes;
      s.free_bytes = space->free_bytes;
    }
    s.compactions = env->compactions();
    s.bytes_reclaimed = env->bytes_reclaimed();
    m.storage.push_back(std::move(s));
  }
  return m;
}

std::optional<cluster_metrics> runtime::cluster() const {
  std::shared_lock<std::shared_mutex> lock(impl_->storage_mu);
  return cluster_locked(*impl_);
}

}  // namespace derive
