#pragma once
// The sequencer: the only writer of the log (design.md, "One total order").
//
// Group commit: every append waiting in its mailbox goes into ONE
// event_log::append call. On each request it queues the request and, unless
// one is already queued, sends itself `flush_atom`; since that message lands
// behind every request already waiting, all of them join the group. A lone
// append on an idle sequencer therefore commits at once (no timer). Each
// requester gets its outcome only after the commit is durable; idempotency
// keys are checked by event_log::append inside the same transaction, so two
// concurrent requests with one key append once.
//
// Messages:
//   append_job                         — from runtime::append (foreign threads)
//   (append_atom, append_request) -> append_outcome
//                                      — from application actors (handles.hpp);
//                                        checked here (check_append, `validate`)
//   writer_job                         — runs on the log between groups (erasure);
//                                        its synced commit makes every group
//                                        before it durable
//   (stop_atom, done_callback)         — commits what is pending, then quits
//
// Cluster mode (`publish` set; docs/architecture.md, "Cluster mode"): the
// sequencer writes nothing itself. Each group (at most max_message_bytes of
// events) is published as one stream message; publish() blocks until the
// stream acknowledged it, so the requests arriving meanwhile form the next
// group. The outcomes come back as an `ingested_group` once this node's
// follower has ingested the message (the follower is the log's writer).
//   ingested_group                     — outcomes of a published group

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>

#include <derive/append.hpp>
#include "core/log.hpp"

namespace derive {

// Statistics of the sequencer (read from any thread).
struct sequencer_counters {
  std::atomic<uint64_t> requests{0};    // requests that got an outcome
  std::atomic<uint64_t> failures{0};    // ... of which errors
  std::atomic<uint64_t> events{0};      // events appended
  std::atomic<uint64_t> commits{0};     // groups committed
  std::atomic<uint64_t> latency_count{0};
  std::atomic<uint64_t> latency_sum_us{0};
  // Append latency histogram (request to outcome), upper bounds in
  // latency_bounds_us; the last bucket is +Inf.
  static constexpr uint64_t latency_bounds_us[] = {100,   250,    500,    1000,   2500,
                                                    5000,  10000,  25000,  50000,  100000,
                                                    250000, 1000000};
  static constexpr size_t latency_buckets = std::size(latency_bounds_us) + 1;
  std::atomic<uint64_t> latency_histogram[latency_buckets] = {};
  void record_latency(std::chrono::steady_clock::duration d);
};

// Work on the log that only its writer may do (erasure: actors/eraser.hpp),
// run on the sequencer thread between groups.
struct writer_job {
  std::function<void(event_log&)> run;
};

// One append from a foreign thread. `done` runs once, on the sequencer thread.
struct append_job {
  checked_append request;
  std::function<void(result<append_outcome>)> done;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

struct sequencer_context {
  event_log* log = nullptr;
  sequencer_counters* counters = nullptr;  // optional
  // The application's validators, run on requests from application actors
  // after check_append.
  std::function<status(const checked_append&)> validate;
  // Runs on the sequencer thread whenever the log's durable head advances.
  std::function<void(uint64_t head)> committed;
  // Most requests per transaction (the rest joins the next one).
  size_t max_group = 4096;
  // Cluster mode: publishes `group` as one stream message; `done` runs once,
  // on any thread, with one outcome per request. Empty: the embedded log.
  std::function<void(const std::vector<checked_append>& group,
                     std::function<void(std::vector<result<append_outcome>>)> done)>
      publish;
  // Cluster mode: the largest group, in bytes of event fields (one request
  // is published alone whatever its size).
  size_t max_message_bytes = 512 * 1024;
  // Cluster mode: how long stop() waits for published groups to be ingested.
  std::chrono::milliseconds stop_timeout = std::chrono::seconds(10);
};

// The outcomes of the published group `id` (cluster mode).
struct ingested_group {
  uint64_t id = 0;
  std::vector<result<append_outcome>> outcomes;
};

caf::actor spawn_sequencer(caf::actor_system& sys, sequencer_context ctx, bool detached = true);

}  // namespace derive

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(derive::append_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(derive::writer_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(derive::ingested_group)
