#pragma once
// Counters for /metrics: cheap to read, from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <derive/view_info.hpp>

namespace derive {

struct view_metrics {
  std::string name;
  uint32_t version = 1;
  uint64_t offset = 0;
  uint64_t lag = 0;
  view_status status = view_status::stopped;
  uint64_t applied = 0;  // inputs (events, or upstream offsets) applied since start
  uint64_t commits = 0;  // view_store commits since start
  // Bytes of keys and values committed since start (state and private; a
  // delete counts its key). bytes_written / applied is the cost of an input:
  // if it grows with the view, the view rewrites whole values (see
  // docs/writing-a-view.md, "Keys are the unit of change").
  uint64_t bytes_written = 0;
  uint64_t largest_value = 0;  // the largest value committed since start, in bytes
  std::vector<view_version_info> versions;  // as in view_info
};

// Cluster mode (runtime_options.cluster): the stream and this node's place in it.
struct cluster_metrics {
  std::string stream;
  bool reachable = false;         // connected to a NATS server
  std::string server;             // its URL
  uint64_t stream_first_seq = 0;  // the stream's state, as last seen (about every second)
  uint64_t stream_last_seq = 0;
  uint64_t ingested_seq = 0;      // the last stream sequence ingested into the local log
  uint64_t lag = 0;               // stream messages not yet ingested here
  uint64_t messages_published = 0;
  uint64_t publish_retries = 0;
  uint64_t messages_ingested = 0;
  uint64_t duplicates_dropped = 0;  // ingested copies of an earlier message (appended nothing)
  std::string error;              // non-empty: this node cannot follow the stream (why)
};

// Retention (runtime_options.retention): per rule and for the sweeps.
struct retention_rule_metrics {
  std::string pattern;
  uint64_t keep_ms = 0;
  uint64_t through = 0;   // every event of its types up to here is redacted (durable)
  uint64_t expired = 0;   // events it redacted since start
};
struct retention_metrics {
  uint64_t sweeps = 0;           // since start
  uint64_t expired = 0;          // events redacted since start
  int64_t last_sweep_ms = 0;     // log clock; 0: none yet
  uint64_t last_sweep_head = 0;  // the log head the last sweep saw
  std::vector<retention_rule_metrics> rules;
};

// One LMDB environment (docs/storage.md, "Space reclamation"): "log" (the
// data directory) or "views".
struct storage_metrics {
  std::string environment;
  uint64_t file_bytes = 0;       // data.mdb's size
  uint64_t free_bytes = 0;       // free pages and the file's unused tail
  uint64_t compactions = 0;      // online compactions since start (reclamation, forget)
  uint64_t bytes_reclaimed = 0;  // the bytes they gave back
};

struct runtime_metrics {
  uint64_t head = 0;
  uint64_t append_requests = 0;  // requests answered by the sequencer (ok or error)
  uint64_t append_failures = 0;  // ... of which errors
  uint64_t appended_events = 0;
  uint64_t append_commits = 0;   // group commits (one LMDB transaction each)
  // Append latency, from runtime::append to the outcome, in microseconds.
  uint64_t append_latency_count = 0;
  uint64_t append_latency_sum_us = 0;
  // Cumulative histogram: (upper bound in microseconds, appends <= bound);
  // the last bound is UINT64_MAX (+Inf).
  std::vector<std::pair<uint64_t, uint64_t>> append_latency_buckets;
  uint64_t subscriptions = 0;
  uint64_t hub_batches = 0;  // committed batches handed on by the hub
  uint64_t hub_lost = 0;     // batches dropped because the hub was full
  std::vector<view_metrics> views;
  std::optional<cluster_metrics> cluster;  // cluster mode only
  std::optional<retention_metrics> retention;  // when retention rules are declared
  std::vector<storage_metrics> storage;  // the log's, the views' (while running)
};

}  // namespace derive
