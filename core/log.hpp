#pragma once
// The durable, totally ordered event log (protocol.md, "Offsets", "Events",
// "Idempotency"). Offsets start at 1, are gap-free and never reused.
//
// Thread-safety: append() must be called by one writer at a time (the
// sequencer). Reads may be called from any thread concurrently with appends;
// each read uses its own short read transaction.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <derive/append.hpp>
#include <derive/event.hpp>
#include <derive/options.hpp>
#include <derive/status.hpp>

#include "core/environment.hpp"
#include "core/event_record.hpp"  // the record codec, for tests and benchmarks
#include "core/stream_id_store.hpp"

namespace derive {

// Where an ingested message comes from (cluster mode, docs/architecture.md,
// "Cluster mode"): its stream sequence, the ts its publisher stamped, and its
// id and body digest (message.id "" when it carries no id).
struct ingest_mark {
  uint64_t stream_seq = 0;
  int64_t ts = 0;
  stream_message_id message;
};

class event_log {
 public:
  // Opens the log in `env` (which must outlive it).
  static result<std::unique_ptr<event_log>> open(environment& env, log_options options = {});
  ~event_log();

  // Appends every request of `group` in ONE transaction (group commit) and
  // returns one outcome per request, in order. A request whose idempotency key
  // is known replays the stored outcome (or fails with idempotency_key_reused
  // when the fingerprint differs); two requests of one group with one key
  // append once. If the commit fails (storage_full, io_error), every request
  // gets that error and nothing is appended.
  // Returns only after the commit is durable (per the environment's mode):
  // append_deferred, then sync.
  // REQUIRES: a single writer.
  std::vector<result<append_outcome>> append(const std::vector<checked_append>& group);

  // Convenience for one request.
  result<append_outcome> append(checked_append request);

  // As append(), but in an environment without a journal returns as soon as
  // the commit is written: its pages are flushed, its meta page (which makes
  // it count after a power loss) is not (MDB_NOMETASYNC). The next commit's
  // flush, or sync(), makes it durable, so under load every group costs one
  // flush (docs/storage.md, "Durability"). With a journal (the runtime's
  // log: docs/storage.md, "The log's journal") it returns durable: the
  // commit is not flushed, its record in the journal is (one flush).
  // Its events are not readable (head(), read(), ...) until durable; an
  // outcome (a replay too) may be acknowledged once head() >= written_head()
  // as it was when this call returned.
  // REQUIRES: a single writer.
  std::vector<result<append_outcome>> append_deferred(const std::vector<checked_append>& group);

  // As append_deferred(), for one message of a cluster's stream: the events
  // are stamped max(mark.ts, the last ts) instead of the clock's time, the
  // idempotency keys pruned against mark.ts, and mark.stream_seq is stored
  // in the same transaction (stream_seq()). So every node that ingests the
  // same messages in the same order makes the same log, offsets, ts and
  // idempotency decisions. Always commits (the position moves even when
  // every request replays). A message whose id an earlier message carried
  // (stream_id_store's window) is a publish the stream stored twice: nothing
  // of it is appended and it returns no outcome at all (an empty vector; the
  // first copy's outcomes were the publisher's), but the position moves.
  // On a failed commit every request gets the error and stream_seq() stays.
  // REQUIRES: the single writer; mark.stream_seq > stream_seq().
  std::vector<result<append_outcome>> ingest_deferred(const std::vector<checked_append>& group,
                                                      const ingest_mark& mark);

  // The stream sequence of the last message ingested and committed (0: none;
  // an embedded log always has 0).
  uint64_t stream_seq() const;
  // The id and digest of that message (id "": none, or not known).
  // REQUIRES: the single writer (the follower).
  stream_message_id stream_message() const;

  // Makes every commit so far durable (one flush; nothing when none is
  // pending or in durability::relaxed). Errors: io_error (the environment is
  // then sticky-failed: what was not yet durable may or may not survive).
  // REQUIRES: the single writer.
  status sync();

  // Events with offset >= from, in order, at most `limit`; never beyond head().
  result<std::vector<event>> read(uint64_t from, size_t limit) const;
  // The same into `out`, replacing its contents and reusing the storage of
  // its events: a reader that pages through the log with one vector
  // allocates (almost) nothing per event. On an error `out` holds the events
  // read before it.
  // `max_bytes`: it also stops after the event whose record reaches that
  // many bytes read (at least one event is read).
  status read(uint64_t from, size_t limit, std::vector<event>& out,
              size_t max_bytes = SIZE_MAX) const;

  // The last durable offset (0 when empty): what readers may see. In
  // durability::relaxed every commit counts as durable.
  uint64_t head() const;

  // The last offset committed, durable or not (>= head()).
  uint64_t written_head() const;

  // Offsets (up to head()) of the events whose subject is `subject`, ascending.
  result<std::vector<uint64_t>> offsets_of_subject(const std::string& subject) const;

  // The stored outcome for an idempotency key, if remembered and durable.
  result<std::optional<append_outcome>> find_idempotency_key(const std::string& key) const;

  // --- erasure (docs/storage.md, "Erasure") ---
  // A durable request to forget a subject: the subject and when it was asked.
  struct erasure_request {
    std::string subject;
    int64_t requested_at = 0;
  };
  // Records (synced) that `subjects` are to be forgotten; a subject already
  // recorded keeps its first request time. REQUIRES: the single writer.
  status record_erasures(const std::vector<std::string>& subjects, int64_t requested_at);
  // The recorded requests not yet finished, by subject.
  result<std::vector<erasure_request>> erasure_requests() const;
  // In one synced transaction: rewrites every record of each subject as
  // redacted (offset, ts and type kept; key, subject and data gone) and
  // deletes the idempotency keys of the requests that appended them. Returns
  // per subject the offsets it covers (ascending). Idempotent: the subject
  // index is kept until finish_erasures. REQUIRES: the single writer.
  result<std::vector<std::vector<uint64_t>>> redact_subjects(
      const std::vector<std::string>& subjects);
  // Rewrites the records at `offsets` (ascending) as redacted, with their
  // subject index entries and idempotency keys (retention). Returns how many
  // were not redacted before. REQUIRES: the single writer.
  result<size_t> redact_offsets(const std::vector<uint64_t>& offsets);
  // Ends the erasure of `subjects`: rewrites the subject index, the requests
  // and the idempotency keys without them into fresh pages (so no page in
  // use keeps their bytes) and sets scrub_pending. REQUIRES: the single writer.
  status finish_erasures(const std::vector<std::string>& subjects);
  // True from finish_erasures until scrub() has overwritten the pages the
  // erasure freed (environment::scrub_free_pages), also across restarts.
  result<bool> scrub_pending() const;
  // Overwrites the log environment's free pages, then clears scrub_pending.
  // REQUIRES: the single writer.
  status scrub();
  // True from finish_erasures until compacted(): the runtime then compacts
  // both data directories when it next opens them (environment::compact).
  result<bool> compact_pending() const;
  status compacted();

  // --- retention (docs/storage.md, "Retention") ---
  // How far the sweep of one rule got: every event of a type the rule
  // matches with offset <= through is redacted; target > through is a
  // durable request (synced before any redaction) to redact those in
  // (through, target], all of them stamped before `before` (ms).
  struct retention_mark {
    std::string pattern;
    uint64_t through = 0;
    uint64_t target = 0;
    int64_t before = 0;
  };
  // Every rule's mark, by pattern (rules no longer configured included).
  result<std::vector<retention_mark>> retention_marks() const;
  // Records (synced) each mark's target and before; through is kept.
  // REQUIRES: the single writer.
  status record_retention(const std::vector<retention_mark>& marks);
  // Ends the requests of `patterns`: through = target. When `redacted`,
  // also sets scrub_pending and compact_pending (as finish_erasures).
  // REQUIRES: the single writer.
  status finish_retention(const std::vector<std::string>& patterns, bool redacted);

  environment& env() const { return env_; }

 private:
  class impl;
  event_log(environment& env, std::unique_ptr<impl> impl);
  environment& env_;
  std::unique_ptr<impl> impl_;
};

}  // namespace derive
