#pragma once
// Configuration of a runtime and of the storage it opens.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace derive {

enum class durability {
  full,     // every commit is synced to disk before it returns (default)
  relaxed,  // commits reach the OS but are not synced; a power loss may undo
            // the last commits (a process crash does not). Explicit opt-in.
};

// The LMDB environment of a data directory.
struct environment_options {
  // The largest size the data file may reach. The file is sparse, so a large
  // value costs nothing until used. A commit that would pass it fails with
  // storage_full (the environment stays usable).
  uint64_t map_size = uint64_t{64} << 30;
  durability mode = durability::full;
  unsigned max_readers = 1024;
  // Named databases: the log's environment uses 5, the views' 5 per view
  // version (plus 2 per kept view checkpoint). Every read
  // transaction zeroes a table of this many entries (~50 bytes each), so a
  // large value slows every read.
  unsigned max_databases = 256;
  // durability::full: > 0 puts a journal of this many bytes ahead of the
  // environment (docs/storage.md, "The log's journal"): commits are not
  // flushed; a deferred commit (the log's appends) is made durable by its
  // record in the journal, one flush; every other commit by a checkpoint.
  // 0: every commit flushes itself. The runtime's log uses 1 MiB (a group
  // that does not fit is made durable by a checkpoint instead).
  uint64_t journal_bytes = 0;
};

// The event log.
struct log_options {
  // Idempotency keys are kept at least this long and at least this many
  // (whichever keeps more).
  std::chrono::milliseconds idempotency_retention = std::chrono::hours(24);
  uint64_t idempotency_min_keys = 1'000'000;
  // At most this many expired keys are pruned per append transaction, so that
  // pruning never makes an append slow.
  unsigned idempotency_prune_per_commit = 64;
  // The clock that stamps events and idempotency keys, in milliseconds since
  // the Unix epoch; empty: the system clock. Injectable for tests.
  std::function<int64_t()> clock;
};

// Cluster mode (docs/architecture.md, "Cluster mode"): the system of record is
// a NATS JetStream stream; this node publishes its appends to it and ingests
// every message, in stream order, into its local log.
struct cluster_options {
  // NATS server URLs ("nats://127.0.0.1:4222"); empty: the embedded log.
  std::vector<std::string> nats_urls;
  // The stream (created with these settings when missing); its subject is
  // "<stream>.log".
  std::string stream = "derive";
  int replicas = 1;
  // How long an append may wait for the stream's acknowledgement, across
  // leader elections and reconnects, before it fails with `unavailable`.
  std::chrono::milliseconds publish_timeout = std::chrono::seconds(10);
  bool enabled() const { return !nats_urls.empty(); }
};

// Retention (docs/storage.md, "Retention"): events whose type matches
// `pattern` are redacted, as forget redacts them, once older than `keep`
// (by their ts and log_options::clock). A pattern is an exact event type or
// "prefix.*" (every type starting with "prefix."); no two rules may match a
// common type, and none a reserved `derive.` type.
struct retention_rule {
  std::string pattern;
  std::chrono::milliseconds keep{0};
};

// Space reclamation (docs/storage.md, "Space reclamation"): LMDB is
// copy-on-write, so a commit that rewrites many pages leaves as many free
// ones behind, which later commits reuse but the file never gives back. The
// runtime compacts an environment (the log's or the views') online when its
// free pages exceed both thresholds and it has been quiet: no commit in
// either environment for `quiet`, every view caught up. A compaction copies
// the live pages once; the environment's readers and writers wait meanwhile.
struct reclaim_options {
  bool enabled = true;                       // false: never (the off switch)
  double min_free_fraction = 0.25;           // of the file
  uint64_t min_free_bytes = uint64_t{32} << 20;
  std::chrono::milliseconds quiet = std::chrono::seconds(10);
  std::chrono::milliseconds check_every = std::chrono::seconds(1);
};

struct runtime_options {
  std::string data_dir = "data";
  // The log's environment (data_dir itself).
  environment_options storage = [] {
    environment_options o;
    o.journal_bytes = uint64_t{1} << 20;
    return o;
  }();
  // The views' environment (data_dir/views): every view store, so that a view
  // commit never waits for the log's writer lock nor adds to its flushes.
  // Its `mode` is ignored: the views' commits never flush (docs/storage.md,
  // "The views' commits"), unless processors are declared and storage.mode
  // is full (then each flushes once, as a processor's progress must survive
  // a power loss).
  environment_options views_storage;
  // The file naming the running kernel's boot: the views' environment is
  // discarded and rebuilt from the log when it was left unflushed by an
  // earlier boot. Injectable for tests.
  std::string boot_id_path = "/proc/sys/kernel/random/boot_id";
  log_options log;
  // CAF scheduler threads (0: CAF's default).
  unsigned worker_threads = 2;
  // A runner more than this many events behind works in large transactions.
  uint64_t catch_up_batch = 10'000;
  // Largest number of events per live commit.
  uint64_t live_batch = 256;
  // Every view transaction (catch-up or live) also ends after the input that
  // makes the batch hold this many bytes (keys and values read, cached and
  // written, an estimate), or after it has run this long; the runner commits
  // what it applied and goes on in a new transaction. So a view catching up
  // on any backlog holds about catch_up_bytes of batch (twice that while one
  // batch commits beside the runner as the next applies: docs/architecture.md,
  // "Commits beside the runner"), commits (and shows progress) at least every
  // catch_up_time, and stop() waits for at most one input and two commits per
  // view. 0 means the default.
  uint64_t catch_up_bytes = uint64_t{64} << 20;
  std::chrono::milliseconds catch_up_time = std::chrono::seconds(1);
  // Subscription hub: batches a slow subscriber may have outstanding before
  // it is told it lost changes.
  size_t hub_buffer = 1024;
  // Continuous audits (docs/operating.md, "Audits"): every interval, the
  // runtime audits each view in turn on a low-priority thread. 0: off (audits
  // then run on demand only).
  std::chrono::milliseconds audit_interval{0};
  // Cluster mode; default: off (the embedded log).
  cluster_options cluster;
  // Retention rules (checked at start: invalid_parameter) and how often the
  // eraser sweeps them, measured on log.clock (which it reads at least every
  // second, so a test clock needs no sleeping). Refused in cluster mode.
  std::vector<retention_rule> retention;
  std::chrono::milliseconds retention_interval = std::chrono::minutes(1);
  // View checkpoints (docs/storage.md, "View checkpoints"): every view
  // version but processors copies its state and private state, in the commit
  // that passes view_checkpoint_every offsets since its newest checkpoint,
  // keeping the newest view_checkpoints_kept copies. A forget or a retention
  // sweep then rebuilds each view from its newest checkpoint before the first
  // redacted event instead of from offset 1. Costs a copy of each view's
  // state per view_checkpoint_every events and view_checkpoints_kept copies
  // of it on disk; each kept copy adds 2 databases per view version to the
  // views' environment (views_storage.max_databases). 0: off (the default).
  uint64_t view_checkpoint_every = 0;
  unsigned view_checkpoints_kept = 2;
  // Compaction of environments at rest (reclaim_options).
  reclaim_options reclaim;
};

}  // namespace derive
