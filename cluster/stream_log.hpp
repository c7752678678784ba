#pragma once
// The log on a NATS JetStream stream (docs/architecture.md, "Cluster mode").
//
// The stream is the system of record. A stream_log publishes groups of
// appends to it, one message per group, and follows it on a thread of its
// own: every message, in stream order, is ingested into the local event_log
// (event_log::ingest_deferred), which records the message's stream sequence
// in the same transaction. Offsets are the local log's, counted in events in
// ingest order, so every node assigns the same offsets, ts and idempotency
// decisions. A publisher learns its outcomes when its own message has been
// ingested here (read-your-writes on this node).
//
// A publish is tried again until acknowledged, so the stream may store a
// message more than once: each carries its id (header Derive-Msg-Id) and the
// ingest keeps the first copy, the same on every node (stream_id_store).
//
// The follower never skips: a message missing from the stream (retention,
// deletion) or one it cannot read stops it with an error (state().error),
// and appends then fail with `unavailable`. So does a stream whose message
// at the node's position is not the one the node ingested there (checked
// every second and on resume): the node stops instead of diverging.
//
// Thread-safety: publish() from one thread at a time (the sequencer);
// status() from any thread; start() and stop() by the owner.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <derive/append.hpp>
#include <derive/options.hpp>
#include <derive/status.hpp>

#include "core/log.hpp"

namespace derive {

// What a node knows of the stream and of its own position.
struct cluster_status {
  bool reachable = false;         // connected to a NATS server
  std::string server;             // the server's URL when connected
  uint64_t stream_first_seq = 0;  // the stream's state, as last seen (about every second)
  uint64_t stream_last_seq = 0;
  uint64_t ingested_seq = 0;      // the stream sequence ingested into the local log
  uint64_t head = 0;              // the local log's offset
  uint64_t lag = 0;               // stream_last_seq - ingested_seq (messages), 0 when ahead
  uint64_t messages_published = 0;
  uint64_t publish_retries = 0;   // publishes tried again (no leader, reconnecting)
  uint64_t messages_ingested = 0;
  uint64_t duplicates_dropped = 0;  // ingested copies of an earlier message (nothing appended)
  std::string error;              // non-empty: this node cannot follow the stream (why)
};

class stream_log {
 public:
  using outcomes_fn = std::function<void(std::vector<result<append_outcome>>)>;
  // What the stream_log reports for the owner's log (from any of its threads).
  enum note_level { info, warning, error };
  using notify_fn = std::function<void(note_level, const std::string&)>;

  // Connects to options.nats_urls, creates the stream when it is missing
  // (file storage, options.replicas) and checks that `log` belongs to it.
  // Errors: unavailable (no server answers, or no JetStream within
  // options.publish_timeout); invalid_parameter (`log` holds events of the
  // embedded log, or is ahead of the stream: another stream's log).
  static result<std::unique_ptr<stream_log>> open(event_log& log, cluster_options options,
                                                   notify_fn notify = {});
  ~stream_log();

  // Starts following; `ingested(head)` runs on the follower thread after
  // each durable ingest that moved the head.
  void start(std::function<void(uint64_t head)> ingested);

  // Publishes `group` as one message and waits for the stream's
  // acknowledgement, trying again with the same message id (the ingest
  // drops copies) until options.publish_timeout. `done` runs once: on
  // the follower thread with one outcome per request when this node has
  // ingested the message durably, or with `unavailable` (the append may or
  // may not be in the stream: retry with the same Idempotency-Key).
  // REQUIRES: one caller at a time.
  void publish(const std::vector<checked_append>& group, outcomes_fn done);

  // The largest message body the servers accept.
  size_t max_message_bytes() const;

  // Stops the follower; appends still waiting get `unavailable`.
  void stop();

  cluster_status state() const;

  class impl;

 private:
  explicit stream_log(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> impl_;
};

}  // namespace derive
