#include "core/log.hpp"

#include <lmdb.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>

#include "core/append_check.hpp"
#include "core/coding.hpp"
#include "core/crash_point.hpp"
#include "core/event_record.hpp"
#include "core/idempotency_store.hpp"
#include "core/lmdb_util.hpp"

// Storage layout: docs/storage.md, "The event log". Keys of MDB_INTEGERKEY /
// MDB_INTEGERDUP databases are native uint64 (LMDB's rule).

namespace derive {

namespace {

constexpr uint64_t log_format = 1;
// The same records in a journaled environment (docs/storage.md, "The log's
// journal"): a build that knows no journal must refuse it, since its commits
// would reuse pages the journal's checkpoint still needs.
constexpr uint64_t journaled_log_format = 2;
constexpr std::string_view meta_format = "format";
// Set when an erasure's freed pages still wait to be overwritten (scrub()).
constexpr std::string_view meta_scrub_pending = "scrub_pending";
// Set with scrub_pending: the data directories wait for a compaction.
constexpr std::string_view meta_compact_pending = "compact_pending";
constexpr std::string_view meta_stream_seq = "stream_seq";
// "retention/<pattern>" -> fixed64 through | fixed64 target | fixed64 before.
constexpr std::string_view meta_retention = "retention/";

// The journal's record of one append (environment::journal_commit): enough to
// redo it on the log as it was before it (append() is deterministic given
// the log, the requests, `now` and the mark), and the heads around it, so a
// replay skips what the log already holds.
struct group_record {
  uint64_t head_before = 0;
  uint64_t head_after = 0;
  int64_t now = 0;
  // The pruning settings of the append (a replay prunes as it did).
  int64_t retention_ms = 0;
  uint64_t min_keys = 0;
  uint64_t prune_per_commit = 0;
  std::optional<ingest_mark> mark;
  std::vector<checked_append> group;
};

void encode_group_record(std::string& out, uint64_t head_before, uint64_t head_after,
                         int64_t now, const log_options& options, const ingest_mark* mark,
                         const std::vector<checked_append>& group) {
  out.clear();
  put_fixed64(out, head_before);
  put_fixed64(out, head_after);
  put_fixed64(out, static_cast<uint64_t>(now));
  put_fixed64(out, static_cast<uint64_t>(options.idempotency_retention.count()));
  put_fixed64(out, options.idempotency_min_keys);
  put_fixed64(out, options.idempotency_prune_per_commit);
  out.push_back(mark ? 1 : 0);
  if (mark) {
    put_fixed64(out, mark->stream_seq);
    put_fixed64(out, static_cast<uint64_t>(mark->ts));
    put_length_prefixed(out, mark->message.id);
    put_fixed64(out, mark->message.digest);
  }
  put_requests(out, group);
}

std::optional<group_record> decode_group_record(std::string_view in) {
  group_record g;
  uint64_t now = 0, retention = 0;
  if (!get_fixed64(in, g.head_before) || !get_fixed64(in, g.head_after) || !get_fixed64(in, now) ||
      !get_fixed64(in, retention) || !get_fixed64(in, g.min_keys) ||
      !get_fixed64(in, g.prune_per_commit) || in.empty() || static_cast<uint8_t>(in.front()) > 1)
    return std::nullopt;
  g.now = static_cast<int64_t>(now);
  g.retention_ms = static_cast<int64_t>(retention);
  const bool has_mark = in.front() == 1;
  in.remove_prefix(1);
  if (has_mark) {
    ingest_mark m;
    uint64_t ts = 0;
    std::string_view id;
    if (!get_fixed64(in, m.stream_seq) || !get_fixed64(in, ts) || !get_length_prefixed(in, id) ||
        !get_fixed64(in, m.message.digest))
      return std::nullopt;
    m.ts = static_cast<int64_t>(ts);
    m.message.id.assign(id);
    g.mark = std::move(m);
  }
  if (!get_requests(in, g.group)) return std::nullopt;
  if (!in.empty()) return std::nullopt;
  return g;
}

int64_t system_clock_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

// ---- the log -------------------------------------------------------------------

class event_log::impl {
 public:
  impl(environment& env, log_options options)
      : env_(env), options_(std::move(options)), idempotency_(env), stream_ids_(env) {
    if (!options_.clock) options_.clock = system_clock_ms;
  }

  status open();
  ~impl() { env_.forget_reopen(this); }
  // `replayed_now`: a journal record's replay (its clock reading, no record
  // written).
  std::vector<result<append_outcome>> append(const std::vector<checked_append>& group,
                                             const ingest_mark* mark = nullptr,
                                             std::optional<int64_t> replayed_now = std::nullopt);
  status sync();
  uint64_t stream_seq() const { return stream_seq_.load(std::memory_order_acquire); }
  stream_message_id stream_message() const { return stream_message_; }
  status read(uint64_t from, size_t limit, std::vector<event>& out, size_t max_bytes) const;
  result<std::vector<uint64_t>> offsets_of_subject(const std::string& subject) const;
  result<std::optional<append_outcome>> find_idempotency_key(const std::string& key) const;
  uint64_t head() const { return head_.load(std::memory_order_acquire); }
  uint64_t written_head() const { return written_; }

  status record_erasures(const std::vector<std::string>& subjects, int64_t requested_at);
  result<std::vector<erasure_request>> erasure_requests() const;
  result<std::vector<std::vector<uint64_t>>> redact_subjects(
      const std::vector<std::string>& subjects);
  result<size_t> redact_offsets(const std::vector<uint64_t>& offsets);
  status finish_erasures(const std::vector<std::string>& subjects);
  result<bool> scrub_pending() const;
  status scrub();
  result<bool> compact_pending() const;
  status compacted();
  result<std::vector<retention_mark>> retention_marks() const;
  status record_retention(const std::vector<retention_mark>& marks);
  status finish_retention(const std::vector<std::string>& patterns, bool redacted);

 private:
  status open_handles();
  status check_format();
  status load_head();
  // Journal mode: redoes the appends the journal holds after its checkpoint.
  status replay_journal();
  // Journal mode: the append just committed made durable by its record.
  status journal_append(uint64_t head_before, int64_t now, const ingest_mark* mark,
                        const std::vector<checked_append>& group);
  // In an ingest's transaction: whether mark's message is a duplicate, and
  // its id recorded; then the pruning of old ids.
  result<bool> record_message(MDB_txn* txn, const ingest_mark& mark);
  status append_request_in(MDB_txn* txn, MDB_cursor* log_cursor, const checked_append& req,
                           int64_t ts, uint64_t& next, result<append_outcome>& out,
                           bool& dirty);
  status append_events(MDB_txn* txn, MDB_cursor* log_cursor, const checked_append& req,
                       int64_t ts, uint64_t& next);
  result<std::vector<uint64_t>> subject_offsets(MDB_txn* txn, const std::string& subject) const;
  // Rewrites the record at `offset` as redacted; `subject` receives the
  // subject it had ("" when none or already redacted); false: no record.
  result<bool> redact_record(MDB_txn* txn, uint64_t offset, std::string& subject);
  // Commits an erasure transaction synced; everything written before it is
  // durable after it.
  status commit_synced(txn_guard& txn);

  environment& env_;
  log_options options_;
  MDB_dbi log_ = 0, subject_ = 0, meta_ = 0, erasure_ = 0;
  idempotency_store idempotency_;
  stream_id_store stream_ids_;
  std::atomic<uint64_t> head_{0};  // durable
  std::atomic<uint64_t> stream_seq_{0};  // committed (cluster mode)
  // Writer-only state (REQUIRES: the single writer).
  stream_message_id stream_message_;  // the message at stream_seq_ (cluster mode)
  uint64_t written_ = 0;  // committed, maybe not yet durable
  int64_t last_ts_ = 0;
  record_batch_encoder encoder_;  // its buffer is reused across appends
  std::string record_;            // a journal record, reused
};


status event_log::impl::open() {
  if (auto st = open_handles(); !st) return st;
  // An online compaction reopens the databases: the handles may change.
  env_.on_reopen(this, [this] { return open_handles(); });
  if (auto st = check_format(); !st) return st;
  if (auto st = load_head(); !st) return st;
  return replay_journal();
}

status event_log::impl::replay_journal() {
  if (!env_.journaled()) return status::ok();
  for (const auto& bytes : env_.journal_records()) {
    auto record = decode_group_record(bytes);
    if (!record)
      return {errc::corruption, "the journal of '" + env_.path() + "' holds a record this build cannot read"};
    const bool held = record->mark ? record->mark->stream_seq <= stream_seq()
                                   : record->head_after <= written_;
    if (held) continue;  // the checkpoint's file holds it already
    if (record->head_before != written_)
      return {errc::corruption, "the journal of '" + env_.path() + "' continues the log at offset " +
                                    std::to_string(record->head_before + 1) + ", its head is " +
                                    std::to_string(written_)};
    // Pruned as the append did, whatever the options are now.
    const log_options configured = options_;
    options_.idempotency_retention = std::chrono::milliseconds(record->retention_ms);
    options_.idempotency_min_keys = record->min_keys;
    options_.idempotency_prune_per_commit = static_cast<unsigned>(record->prune_per_commit);
    auto outcomes = append(record->group, record->mark ? &*record->mark : nullptr, record->now);
    options_ = configured;
    for (auto& o : outcomes)
      if (!o && (o.error().code() == errc::io_error || o.error().code() == errc::storage_full))
        return o.error();
    if (written_ != record->head_after ||
        (record->mark && stream_seq() != record->mark->stream_seq))
      return {errc::corruption, "replaying the journal of '" + env_.path() + "' reached offset " +
                                    std::to_string(written_) + ", not " +
                                    std::to_string(record->head_after)};
  }
  if (auto st = env_.journal_replayed(); !st) return st;
  head_.store(written_, std::memory_order_release);
  return status::ok();
}

status event_log::impl::journal_append(uint64_t head_before, int64_t now, const ingest_mark* mark,
                                       const std::vector<checked_append>& group) {
  encode_group_record(record_, head_before, written_, now, options_, mark, group);
  if (auto st = env_.journal_commit(record_); !st) return st;
  head_.store(written_, std::memory_order_release);
  return status::ok();
}

status event_log::impl::open_handles() {
  struct spec {
    const char* name;
    unsigned flags;
    MDB_dbi* dbi;
  };
  for (auto [name, flags, dbi] : {spec{"log", MDB_INTEGERKEY, &log_},
                                  spec{"subject", MDB_DUPSORT | MDB_DUPFIXED | MDB_INTEGERDUP,
                                       &subject_},
                                  spec{"meta", 0, &meta_}, spec{"erasure", 0, &erasure_}}) {
    auto h = env_.database(name, flags);
    if (!h) return h.error();
    *dbi = *h;
  }
  if (auto st = stream_ids_.open(); !st) return st;
  return idempotency_.open();
}

// Reads meta/format, writing it when the log is new or has just been given a
// journal (format 2 from then on; a log of format 2 opens without one too).
status event_log::impl::check_format() {
  txn_guard txn;
  if (int rc = env_.begin_txn(txn, 0); rc != MDB_SUCCESS)
    return env_.check(rc, "opening the log");
  uint64_t format = 0;
  bool found = false;
  int rc = get_fixed64_value(txn.get(), meta_, meta_format, format, &found);
  if (rc == MDB_CORRUPTED ||
      (found && format != log_format && format != journaled_log_format))
    return {errc::corruption, "the data directory '" + env_.path() +
                                  "' holds a log format this build cannot read"};
  if (rc != MDB_SUCCESS) return env_.check(rc, "reading the log format");
  const uint64_t wanted = env_.journaled() ? journaled_log_format : log_format;
  if (found && (format == wanted || format == journaled_log_format)) return status::ok();
  if (rc = put_fixed64_value(txn.get(), meta_, meta_format, wanted); rc != MDB_SUCCESS)
    return env_.check(rc, "writing the log format");
  return env_.commit(txn);
}

// The head is the key of the last record (records are never deleted, see
// docs/storage.md), and the last timestamp is that record's.
status event_log::impl::load_head() {
  txn_guard txn;
  cursor_guard c;
  int rc = env_.begin_txn(txn, MDB_RDONLY);
  if (rc == MDB_SUCCESS) rc = c.open(txn.get(), log_);
  if (rc != MDB_SUCCESS) return env_.check(rc, "reading the log head");
  uint64_t seq = 0;
  if (rc = get_fixed64_value(txn.get(), meta_, meta_stream_seq, seq); rc != MDB_SUCCESS)
    return env_.check(rc, "reading the stream position");
  stream_seq_.store(seq, std::memory_order_release);
  auto at = stream_ids_.at(txn.get(), seq);
  if (!at) return at.error();
  stream_message_ = at->value_or(stream_message_id{});
  MDB_val k{}, v{};
  rc = mdb_cursor_get(c.get(), &k, &v, MDB_LAST);
  if (rc == MDB_NOTFOUND) return status::ok();
  if (rc != MDB_SUCCESS) return env_.check(rc, "reading the last log record");
  const uint64_t head = native_uint64(k);
  auto last = decode_event_record(head, to_view(v));
  if (!last) return last.error();
  last_ts_ = last->ts;
  written_ = head;
  head_.store(head, std::memory_order_release);
  return status::ok();
}

std::vector<result<append_outcome>> event_log::impl::append(
    const std::vector<checked_append>& group, const ingest_mark* mark,
    std::optional<int64_t> replayed_now) {
  auto fail_all = [&](const status& st) {
    return std::vector<result<append_outcome>>(group.size(), result<append_outcome>(st));
  };
  if (group.empty()) return {};
  txn_guard txn;
  // A journaled environment makes every append durable, relaxed or not.
  const bool relaxed = env_.options().mode == durability::relaxed && !env_.journaled();
  if (auto st = env_.begin_write(txn, "starting an append", relaxed ? 0 : MDB_NOMETASYNC); !st)
    return fail_all(st);
  const int64_t now = replayed_now ? *replayed_now : mark ? mark->ts : options_.clock();
  const int64_t ts = std::max(now, last_ts_);
  uint64_t next = written_ + 1;
  bool dirty = false;
  bool duplicate = false;
  if (mark) {
    if (int rc = put_fixed64_value(txn.get(), meta_, meta_stream_seq, mark->stream_seq);
        rc != MDB_SUCCESS)
      return fail_all(env_.check(rc, "writing the stream position"));
    auto dup = record_message(txn.get(), *mark);
    if (!dup) return fail_all(dup.error());
    duplicate = *dup;
    dirty = true;
  }

  std::vector<result<append_outcome>> out(duplicate ? 0 : group.size(),
                                          result<append_outcome>(append_outcome{}));
  status st;
  if (!duplicate) {
    cursor_guard log_cursor;
    if (int rc = log_cursor.open(txn.get(), log_); rc != MDB_SUCCESS)
      st = env_.check(rc, "opening the log");
    for (size_t i = 0; st && i < group.size(); ++i)
      st = append_request_in(txn.get(), log_cursor.get(), group[i], ts, next, out[i], dirty);
  }
  // Keys are pruned only by a transaction that commits anyway (it appended
  // events or moved the stream position): a commit of nothing but pruning
  // would leave a journal record that changes no head, which a replay
  // could not tell from one the file holds.
  if (st && dirty) st = idempotency_.prune(txn.get(), now, options_, dirty);
  // Nothing to keep (all replays or errors), or a failure: the guard aborts.
  if (!st || !dirty) return st ? out : fail_all(st);
  // A test hook where the previous commit is not yet flushed (journal mode:
  // its pages; else its meta page).
  if (!relaxed && (env_.journaled() ? env_.journal_commits() > 0 : head() < written_))
    crash_point("before_log_commit_unsynced");
  const uint64_t head_before = written_;
  if (st = env_.commit(txn); !st) return fail_all(st);
  // This commit flushed its pages after the previous commit wrote its meta
  // page: the previous commit is durable now, this one once the next flush
  // is done (environment::commit, MDB_NOMETASYNC).
  head_.store(relaxed ? next - 1 : written_, std::memory_order_release);
  // Only a commit that stamped events moves the last ts: load_head() reads it
  // back from the last record, so a node that restarts stamps the next events
  // as one that did not (a message of replays only stamps nothing).
  if (next - 1 > written_) last_ts_ = ts;
  written_ = next - 1;
  if (mark) {
    stream_message_ = mark->message;
    stream_seq_.store(mark->stream_seq, std::memory_order_release);
  }
  crash_point("after_log_commit_before_sync");
  // Journal mode: durable once its record is (one flush). A failure leaves
  // the head behind: sync() reports it (sticky).
  if (env_.journaled() && !replayed_now) (void)journal_append(head_before, now, mark, group);
  return out;
}

result<bool> event_log::impl::record_message(MDB_txn* txn, const ingest_mark& mark) {
  bool duplicate = false;
  if (!mark.message.id.empty()) {
    auto first = stream_ids_.find(txn, mark.message.id);
    if (!first) return first.error();
    duplicate = first->has_value();
    if (auto st = stream_ids_.put(txn, mark.stream_seq, mark.ts, mark.message, !duplicate); !st)
      return st;
  }
  if (auto st = stream_ids_.prune(txn, mark.stream_seq, mark.ts); !st) return st;
  return duplicate;
}

status event_log::impl::sync() {
  if (head() == written_) return status::ok();
  if (env_.journaled()) {  // the record was not written: a checkpoint makes the commit durable
    if (auto st = env_.checkpoint(); !st) return st;
    head_.store(written_, std::memory_order_release);
    return status::ok();
  }
  crash_point("before_log_sync");
  if (auto st = env_.sync(); !st) return st;
  head_.store(written_, std::memory_order_release);
  crash_point("after_log_sync");
  return status::ok();
}

// Appends one request (or replays it); request-level failures go to `out`,
// a returned error fails the whole group.
status event_log::impl::append_request_in(MDB_txn* txn, MDB_cursor* log_cursor,
                                          const checked_append& req, int64_t ts, uint64_t& next,
                                          result<append_outcome>& out, bool& dirty) {
  const auto& key = req.idempotency_key();
  if (!key.empty()) {
    auto known = idempotency_.find(txn, key);
    if (!known) return known.error();
    if (*known) {
      if ((*known)->fingerprint != req.fingerprint()) {
        out = status{errc::idempotency_key_reused,
                     "the Idempotency-Key '" + key +
                         "' was already used with a different body; use a new key"};
      } else {
        append_outcome replay = (*known)->outcome;
        replay.replayed = true;
        out = replay;
      }
      return status::ok();
    }
  }
  const append_outcome outcome{next, req.events().size(), false};
  if (auto st = append_events(txn, log_cursor, req, ts, next); !st) return st;
  dirty = true;
  if (!key.empty()) {
    if (auto st = idempotency_.put(txn, key, outcome, ts, req.fingerprint()); !st) return st;
  }
  out = outcome;
  return status::ok();
}

status event_log::impl::append_events(MDB_txn* txn, MDB_cursor* log_cursor,
                                      const checked_append& req, int64_t ts, uint64_t& next) {
  constexpr size_t chunk = record_batch_encoder::max_records;
  std::array<std::string_view, chunk> records;
  const auto& events = req.events();
  for (size_t base = 0; base < events.size(); base += chunk) {
    const size_t n = std::min(chunk, events.size() - base);
    encoder_.encode(&events[base], n, ts, records.data());
    for (size_t i = 0; i < n; ++i) {
      const uint64_t offset = next;
      MDB_val k = uint64_val(offset), v = to_val(records[i]);
      if (int rc = mdb_cursor_put(log_cursor, &k, &v, MDB_APPEND); rc != MDB_SUCCESS)
        return env_.check(rc, "appending an event");
      if (const auto& subject = events[base + i].subject; !subject.empty()) {
        MDB_val sk = to_val(subject), sv = uint64_val(offset);
        if (int rc = mdb_put(txn, subject_, &sk, &sv, 0); rc != MDB_SUCCESS)
          return env_.check(rc, "indexing an event's subject");
      }
      ++next;
    }
  }
  return status::ok();
}

status event_log::impl::read(uint64_t from, size_t limit, std::vector<event>& out,
                             size_t max_bytes) const {
  size_t n = 0;  // events decoded into out[0, n)
  size_t bytes = 0;  // of their records
  // On every return: out holds the events read, the rest of its events gone.
  auto done = [&](status st) {
    out.resize(n);
    return st;
  };
  from = std::max<uint64_t>(from, 1);
  uint64_t h = head();
  if (limit == 0 || from > h) return done(status::ok());
  txn_guard txn;
  cursor_guard c;
  int rc = env_.begin_txn(txn, MDB_RDONLY);
  if (rc == MDB_SUCCESS) rc = c.open(txn.get(), log_);
  if (rc != MDB_SUCCESS) return done(lmdb_status(rc, "reading the log"));
  out.reserve(std::min<uint64_t>(limit, h - from + 1));
  MDB_val k = uint64_val(from), v{};
  rc = mdb_cursor_get(c.get(), &k, &v, MDB_SET_RANGE);
  while (rc == MDB_SUCCESS && n < limit && bytes < max_bytes && native_uint64(k) <= h) {
    if (n == out.size()) out.emplace_back();
    if (auto st = decode_event_record(native_uint64(k), to_view(v), out[n]); !st)
      return done(st);
    ++n;
    bytes += v.mv_size;
    rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT);
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return done(lmdb_status(rc, "reading the log"));
  return done(status::ok());
}

result<std::vector<uint64_t>> event_log::impl::offsets_of_subject(
    const std::string& subject) const {
  std::vector<uint64_t> offsets;
  if (subject.empty() || subject.size() > max_subject_bytes) return offsets;
  txn_guard txn;
  cursor_guard c;
  int rc = env_.begin_txn(txn, MDB_RDONLY);
  if (rc == MDB_SUCCESS) rc = c.open(txn.get(), subject_);
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "reading the subject index");
  MDB_val k = to_val(subject), v{};
  rc = mdb_cursor_get(c.get(), &k, &v, MDB_SET_KEY);
  if (rc == MDB_NOTFOUND) return offsets;
  // Whole pages of duplicates at a time (MDB_DUPFIXED).
  for (rc = mdb_cursor_get(c.get(), &k, &v, MDB_GET_MULTIPLE); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT_MULTIPLE)) {
    size_t n = v.mv_size / sizeof(uint64_t);
    size_t at = offsets.size();
    offsets.resize(at + n);
    std::memcpy(offsets.data() + at, v.mv_data, n * sizeof(uint64_t));
  }
  if (rc != MDB_NOTFOUND) return lmdb_status(rc, "reading the subject index");
  // Ascending: drop what is not durable yet.
  const uint64_t h = head();
  while (!offsets.empty() && offsets.back() > h) offsets.pop_back();
  return offsets;
}

// ---- erasure ------------------------------------------------------------------------

status event_log::impl::commit_synced(txn_guard& txn) {
  // Without MDB_NOMETASYNC a commit in durability::full flushes its pages
  // and its meta page: it and every commit before it are durable.
  if (auto st = env_.commit(txn); !st) return st;
  head_.store(written_, std::memory_order_release);
  return status::ok();
}

status event_log::impl::record_erasures(const std::vector<std::string>& subjects,
                                        int64_t requested_at) {
  txn_guard txn;
  if (auto st = env_.begin_write(txn, "recording an erasure request"); !st) return st;
  for (const auto& subject : subjects) {
    std::string when(8, '\0');
    encode_fixed64(&when[0], static_cast<uint64_t>(requested_at));
    MDB_val k = to_val(subject), v = to_val(when);
    int rc = mdb_put(txn.get(), erasure_, &k, &v, MDB_NOOVERWRITE);
    if (rc != MDB_SUCCESS && rc != MDB_KEYEXIST)
      return env_.check(rc, "recording an erasure request");
  }
  return commit_synced(txn);
}

result<std::vector<event_log::erasure_request>> event_log::impl::erasure_requests() const {
  std::vector<erasure_request> out;
  txn_guard txn;
  cursor_guard c;
  int rc = env_.begin_txn(txn, MDB_RDONLY);
  if (rc == MDB_SUCCESS) rc = c.open(txn.get(), erasure_);
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "reading erasure requests");
  MDB_val k{}, v{};
  for (rc = mdb_cursor_get(c.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT)) {
    if (v.mv_size != 8) return status{errc::corruption, "an erasure request is corrupt"};
    out.push_back({std::string(to_view(k)),
                   static_cast<int64_t>(decode_fixed64(static_cast<const char*>(v.mv_data)))});
  }
  if (rc != MDB_NOTFOUND) return lmdb_status(rc, "reading erasure requests");
  return out;
}

result<std::vector<uint64_t>> event_log::impl::subject_offsets(MDB_txn* txn,
                                                               const std::string& subject) const {
  std::vector<uint64_t> offsets;
  if (subject.empty() || subject.size() > max_subject_bytes) return offsets;
  cursor_guard c;
  if (int rc = c.open(txn, subject_); rc != MDB_SUCCESS)
    return lmdb_status(rc, "reading the subject index");
  MDB_val k = to_val(subject), v{};
  int rc = mdb_cursor_get(c.get(), &k, &v, MDB_SET_KEY);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT_DUP))
    offsets.push_back(native_uint64(v));
  if (rc != MDB_NOTFOUND) return lmdb_status(rc, "reading the subject index");
  return offsets;
}

result<bool> event_log::impl::redact_record(MDB_txn* txn, uint64_t offset, std::string& subject) {
  MDB_val k = uint64_val(offset), v{};
  int rc = mdb_get(txn, log_, &k, &v);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != MDB_SUCCESS) return env_.check(rc, "reading an event to redact");
  auto e = decode_event_record(offset, to_view(v));
  if (!e) return e.error();
  subject = e->subject;
  if (e->redacted) return true;
  // First overwrite the record in place with as many zero bytes (LMDB
  // replaces a value of the same size in place): the put below shrinks the
  // node, which may leave the old bytes in the page's free gap.
  const std::string zeros(v.mv_size, '\0');
  MDB_val zv = to_val(zeros);
  if (rc = mdb_put(txn, log_, &k, &zv, 0); rc != MDB_SUCCESS)
    return env_.check(rc, "redacting an event");
  std::string record;
  encode_redacted_record(e->type, e->ts, record);
  MDB_val nv = to_val(record);
  if (rc = mdb_put(txn, log_, &k, &nv, 0); rc != MDB_SUCCESS)
    return env_.check(rc, "redacting an event");
  return true;
}

result<std::vector<std::vector<uint64_t>>> event_log::impl::redact_subjects(
    const std::vector<std::string>& subjects) {
  txn_guard txn;
  if (auto st = env_.begin_write(txn, "redacting a subject"); !st) return st;
  std::vector<std::vector<uint64_t>> out;
  std::vector<uint64_t> all;
  for (const auto& subject : subjects) {
    auto offsets = subject_offsets(txn.get(), subject);
    if (!offsets) return offsets.error();
    std::string had;
    for (uint64_t offset : *offsets) {
      auto found = redact_record(txn.get(), offset, had);
      if (!found) return found.error();
    }
    all.insert(all.end(), offsets->begin(), offsets->end());
    out.push_back(std::move(*offsets));
  }
  std::sort(all.begin(), all.end());
  if (auto erased = idempotency_.erase_covering(txn.get(), all); !erased) return erased.error();
  crash_point("before_redaction_commit");
  if (auto st = commit_synced(txn); !st) return st;
  return out;
}

result<size_t> event_log::impl::redact_offsets(const std::vector<uint64_t>& offsets) {
  txn_guard txn;
  if (auto st = env_.begin_write(txn, "redacting events"); !st) return st;
  size_t redacted = 0;
  for (uint64_t offset : offsets) {
    std::string subject;
    MDB_val k = uint64_val(offset), v{};
    int rc = mdb_get(txn.get(), log_, &k, &v);
    if (rc == MDB_NOTFOUND) continue;
    if (rc != MDB_SUCCESS) return env_.check(rc, "reading an event to redact");
    auto e = decode_event_record(offset, to_view(v));
    if (!e) return e.error();
    if (e->redacted) continue;
    if (auto found = redact_record(txn.get(), offset, subject); !found) return found.error();
    if (!subject.empty()) {
      MDB_val sk = to_val(subject), sv = uint64_val(offset);
      rc = mdb_del(txn.get(), subject_, &sk, &sv);
      if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        return env_.check(rc, "dropping a subject index entry");
    }
    ++redacted;
  }
  if (auto erased = idempotency_.erase_covering(txn.get(), offsets); !erased)
    return erased.error();
  if (redacted == 0) return size_t{0};  // the guard aborts
  if (auto st = commit_synced(txn); !st) return st;
  return redacted;
}

namespace {

// Copies every record of `from` into `to` (both empty-able, same flags),
// but the keys in `skip`.
int copy_records(MDB_txn* txn, MDB_dbi from, MDB_dbi to, bool dupsort,
                 const std::vector<std::string>& skip) {
  cursor_guard src, dst;
  int rc = src.open(txn, from);
  if (rc == MDB_SUCCESS) rc = dst.open(txn, to);
  if (rc != MDB_SUCCESS) return rc;
  MDB_val k{}, v{};
  for (rc = mdb_cursor_get(src.get(), &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(src.get(), &k, &v, MDB_NEXT)) {
    if (std::find(skip.begin(), skip.end(), to_view(k)) != skip.end()) continue;
    if (int r = mdb_cursor_put(dst.get(), &k, &v, dupsort ? MDB_APPENDDUP : MDB_APPEND);
        r != MDB_SUCCESS)
      return r;
  }
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

}  // namespace

// The index databases hold subjects (and request keys) as keys: deleting a
// key may leave its bytes in the free gap of a page that stays in use. So
// they are rewritten into fresh pages instead: copied, without the finished
// subjects, into `<name>.tmp` (one commit: a crash leaves the originals),
// then emptied and filled again from the copies (another); their old pages
// are then free, and scrub() overwrites them.
status event_log::impl::finish_erasures(const std::vector<std::string>& subjects) {
  struct table {
    const char* name;
    unsigned flags;
    MDB_dbi dbi = 0, tmp = 0;
  };
  const unsigned dup = MDB_DUPSORT | MDB_DUPFIXED | MDB_INTEGERDUP;
  std::vector<table> tables{{"subject", dup}, {"erasure", 0}, {"idem", 0}, {"idem_by_time", 0}};
  for (auto& t : tables) {
    auto dbi = env_.database(t.name, t.flags);
    if (!dbi) return dbi.error();
    auto tmp = env_.database(std::string(t.name) + ".tmp", t.flags);
    if (!tmp) return tmp.error();
    t.dbi = *dbi;
    t.tmp = *tmp;
  }
  txn_guard txn;
  if (auto st = env_.begin_write(txn, "finishing an erasure"); !st) return st;
  for (auto& t : tables) {
    int rc = mdb_drop(txn.get(), t.tmp, 0);
    if (rc == MDB_SUCCESS) rc = copy_records(txn.get(), t.dbi, t.tmp, t.flags & MDB_DUPSORT, subjects);
    if (rc != MDB_SUCCESS) return env_.check(rc, "copying the log's indexes");
  }
  if (auto st = env_.commit(txn); !st) return st;
  crash_point("erasure_indexes_copied");
  if (auto st = env_.begin_write(txn, "finishing an erasure"); !st) return st;
  for (auto& t : tables) {
    int rc = mdb_drop(txn.get(), t.dbi, 0);
    if (rc == MDB_SUCCESS) rc = copy_records(txn.get(), t.tmp, t.dbi, t.flags & MDB_DUPSORT, {});
    if (rc == MDB_SUCCESS) rc = mdb_drop(txn.get(), t.tmp, 0);
    if (rc != MDB_SUCCESS) return env_.check(rc, "rewriting the log's indexes");
  }
  int rc = put_fixed64_value(txn.get(), meta_, meta_scrub_pending, 1);
  if (rc == MDB_SUCCESS) rc = put_fixed64_value(txn.get(), meta_, meta_compact_pending, 1);
  if (rc != MDB_SUCCESS) return env_.check(rc, "recording a pending scrub");
  return commit_synced(txn);
}

result<std::vector<event_log::retention_mark>> event_log::impl::retention_marks() const {
  std::vector<retention_mark> out;
  txn_guard txn;
  cursor_guard c;
  int rc = env_.begin_txn(txn, MDB_RDONLY);
  if (rc == MDB_SUCCESS) rc = c.open(txn.get(), meta_);
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "reading the retention marks");
  MDB_val k = to_val(meta_retention), v{};
  for (rc = mdb_cursor_get(c.get(), &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT)) {
    const std::string_view key = to_view(k);
    if (key.substr(0, meta_retention.size()) != meta_retention) break;
    if (v.mv_size != 24) return status{errc::corruption, "a retention mark is corrupt"};
    const char* p = static_cast<const char*>(v.mv_data);
    out.push_back({std::string(key.substr(meta_retention.size())), decode_fixed64(p),
                   decode_fixed64(p + 8), static_cast<int64_t>(decode_fixed64(p + 16))});
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return lmdb_status(rc, "reading the retention marks");
  return out;
}

namespace {

int put_retention_mark(MDB_txn* txn, MDB_dbi meta, const event_log::retention_mark& m) {
  std::string key = std::string(meta_retention) + m.pattern, value(24, '\0');
  encode_fixed64(&value[0], m.through);
  encode_fixed64(&value[8], m.target);
  encode_fixed64(&value[16], static_cast<uint64_t>(m.before));
  MDB_val k = to_val(key), v = to_val(value);
  return mdb_put(txn, meta, &k, &v, 0);
}

}  // namespace

status event_log::impl::record_retention(const std::vector<retention_mark>& marks) {
  auto known = retention_marks();
  if (!known) return known.error();
  txn_guard txn;
  if (auto st = env_.begin_write(txn, "recording a retention sweep"); !st) return st;
  for (auto m : marks) {
    m.through = 0;
    for (const auto& k : *known)
      if (k.pattern == m.pattern) m.through = k.through;
    if (int rc = put_retention_mark(txn.get(), meta_, m); rc != MDB_SUCCESS)
      return env_.check(rc, "recording a retention sweep");
  }
  return commit_synced(txn);
}

status event_log::impl::finish_retention(const std::vector<std::string>& patterns,
                                         bool redacted) {
  auto known = retention_marks();
  if (!known) return known.error();
  txn_guard txn;
  if (auto st = env_.begin_write(txn, "finishing a retention sweep"); !st) return st;
  for (auto m : *known) {
    if (std::find(patterns.begin(), patterns.end(), m.pattern) == patterns.end()) continue;
    m.through = std::max(m.through, m.target);
    if (int rc = put_retention_mark(txn.get(), meta_, m); rc != MDB_SUCCESS)
      return env_.check(rc, "finishing a retention sweep");
  }
  if (redacted) {
    int rc = put_fixed64_value(txn.get(), meta_, meta_scrub_pending, 1);
    if (rc == MDB_SUCCESS) rc = put_fixed64_value(txn.get(), meta_, meta_compact_pending, 1);
    if (rc != MDB_SUCCESS) return env_.check(rc, "recording a pending scrub");
  }
  return commit_synced(txn);
}

result<bool> event_log::impl::scrub_pending() const {
  txn_guard txn;
  uint64_t pending = 0;
  int rc = env_.begin_txn(txn, MDB_RDONLY);
  if (rc == MDB_SUCCESS) rc = get_fixed64_value(txn.get(), meta_, meta_scrub_pending, pending);
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "reading the log's meta");
  return pending != 0;
}

result<bool> event_log::impl::compact_pending() const {
  txn_guard txn;
  uint64_t pending = 0;
  int rc = env_.begin_txn(txn, MDB_RDONLY);
  if (rc == MDB_SUCCESS) rc = get_fixed64_value(txn.get(), meta_, meta_compact_pending, pending);
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "reading the log's meta");
  return pending != 0;
}

status event_log::impl::compacted() {
  txn_guard txn;
  if (auto st = env_.begin_write(txn, "recording a compaction"); !st) return st;
  MDB_val k = to_val(meta_compact_pending);
  if (int rc = mdb_del(txn.get(), meta_, &k, nullptr); rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return env_.check(rc, "recording a compaction");
  return commit_synced(txn);
}

status event_log::impl::scrub() {
  if (auto pages = env_.scrub_free_pages(); !pages) return pages.error();
  txn_guard txn;
  if (auto st = env_.begin_write(txn, "finishing a scrub"); !st) return st;
  MDB_val k = to_val(meta_scrub_pending);
  if (int rc = mdb_del(txn.get(), meta_, &k, nullptr); rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return env_.check(rc, "finishing a scrub");
  if (auto st = commit_synced(txn); !st) return st;
  return env_.scrub_journal();  // its records may hold the forgotten bytes
}

result<std::optional<append_outcome>> event_log::impl::find_idempotency_key(
    const std::string& key) const {
  if (key.empty() || key.size() > 128) return std::optional<append_outcome>{};
  txn_guard txn;
  if (int rc = env_.begin_txn(txn, MDB_RDONLY); rc != MDB_SUCCESS)
    return lmdb_status(rc, "reading idempotency keys");
  auto found = idempotency_.find(txn.get(), key);
  if (!found) return found.error();
  if (!*found) return std::optional<append_outcome>{};
  const auto& outcome = (*found)->outcome;
  if (outcome.first_offset + outcome.count - 1 > head()) return std::optional<append_outcome>{};
  return std::optional<append_outcome>{outcome};
}

// ---- event_log -------------------------------------------------------------------

result<std::unique_ptr<event_log>> event_log::open(environment& env, log_options options) {
  auto i = std::make_unique<impl>(env, std::move(options));
  if (auto st = i->open(); !st) return st;
  return std::unique_ptr<event_log>(new event_log(env, std::move(i)));
}

event_log::event_log(environment& env, std::unique_ptr<impl> impl)
    : env_(env), impl_(std::move(impl)) {}

event_log::~event_log() = default;

std::vector<result<append_outcome>> event_log::append(const std::vector<checked_append>& group) {
  auto out = impl_->append(group);
  if (auto st = impl_->sync(); !st)
    for (auto& r : out) r = st;
  return out;
}

result<append_outcome> event_log::append(checked_append request) {
  std::vector<checked_append> group;
  group.push_back(std::move(request));
  return std::move(append(group).front());
}

std::vector<result<append_outcome>> event_log::append_deferred(
    const std::vector<checked_append>& group) {
  return impl_->append(group);
}

std::vector<result<append_outcome>> event_log::ingest_deferred(
    const std::vector<checked_append>& group, const ingest_mark& mark) {
  return impl_->append(group, &mark);
}

uint64_t event_log::stream_seq() const { return impl_->stream_seq(); }

stream_message_id event_log::stream_message() const { return impl_->stream_message(); }

status event_log::sync() { return impl_->sync(); }

uint64_t event_log::written_head() const { return impl_->written_head(); }

result<std::vector<event>> event_log::read(uint64_t from, size_t limit) const {
  std::vector<event> events;
  if (auto st = impl_->read(from, limit, events, SIZE_MAX); !st) return st;
  return events;
}

status event_log::read(uint64_t from, size_t limit, std::vector<event>& out,
                       size_t max_bytes) const {
  return impl_->read(from, limit, out, max_bytes);
}

uint64_t event_log::head() const { return impl_->head(); }

status event_log::record_erasures(const std::vector<std::string>& subjects,
                                  int64_t requested_at) {
  return impl_->record_erasures(subjects, requested_at);
}

result<std::vector<event_log::erasure_request>> event_log::erasure_requests() const {
  return impl_->erasure_requests();
}

result<std::vector<std::vector<uint64_t>>> event_log::redact_subjects(
    const std::vector<std::string>& subjects) {
  return impl_->redact_subjects(subjects);
}

result<size_t> event_log::redact_offsets(const std::vector<uint64_t>& offsets) {
  return impl_->redact_offsets(offsets);
}

status event_log::finish_erasures(const std::vector<std::string>& subjects) {
  return impl_->finish_erasures(subjects);
}

result<bool> event_log::scrub_pending() const { return impl_->scrub_pending(); }

status event_log::scrub() { return impl_->scrub(); }

result<bool> event_log::compact_pending() const { return impl_->compact_pending(); }

result<std::vector<event_log::retention_mark>> event_log::retention_marks() const {
  return impl_->retention_marks();
}

status event_log::record_retention(const std::vector<retention_mark>& marks) {
  return impl_->record_retention(marks);
}

status event_log::finish_retention(const std::vector<std::string>& patterns, bool redacted) {
  return impl_->finish_retention(patterns, redacted);
}

status event_log::compacted() { return impl_->compacted(); }

result<std::vector<uint64_t>> event_log::offsets_of_subject(const std::string& subject) const {
  return impl_->offsets_of_subject(subject);
}

result<std::optional<append_outcome>> event_log::find_idempotency_key(
    const std::string& key) const {
  return impl_->find_idempotency_key(key);
}

}  // namespace derive
