#include "core/log.hpp"

#include <lmdb.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>

#include "core/hash.hpp"

// Storage layout: docs/storage.md. Integers in values are little-endian;
// keys of MDB_INTEGERKEY / MDB_INTEGERDUP databases are native uint64 (LMDB's
// rule); the time prefix of idem_by_time is big-endian so that byte order is
// time order.

namespace derive {

namespace {

constexpr uint8_t record_format = 1;
constexpr uint32_t log_format = 1;
constexpr size_t checksum_bytes = 4;

// ---- little helpers for bytes -------------------------------------------

bool get_varint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (unsigned shift = 0; shift < 64 && !in.empty(); shift += 7) {
    auto b = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= uint64_t{b & 0x7fu} << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

bool get_bytes(std::string_view& in, std::string& out) {
  uint64_t n = 0;
  if (!get_varint(in, n) || n > in.size()) return false;
  out.assign(in.data(), n);
  in.remove_prefix(n);
  return true;
}

void put_le64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}

uint64_t get_le64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(p[i])} << (8 * i);
  return v;
}

void put_be64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (56 - 8 * i));
}

uint64_t get_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

uint32_t checksum(std::string_view bytes) { return detail::crc32c(bytes); }

MDB_val as_val(std::string_view s) { return {s.size(), const_cast<char*>(s.data())}; }
std::string_view as_view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

int64_t system_clock_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// ---- stored values ---------------------------------------------------------

// idem: key -> first u64 | count u64 | ts i64 | fingerprint bytes
struct idem_entry {
  append_outcome outcome;
  int64_t ts = 0;
  std::string_view fingerprint;
};

std::string encode_idem(uint64_t first, uint64_t count, int64_t ts, std::string_view fp) {
  std::string v(24, '\0');
  put_le64(&v[0], first);
  put_le64(&v[8], count);
  put_le64(&v[16], static_cast<uint64_t>(ts));
  v.append(fp);
  return v;
}

bool decode_idem(std::string_view v, idem_entry& out) {
  if (v.size() < 24) return false;
  out.outcome.first_offset = get_le64(v.data());
  out.outcome.count = get_le64(v.data() + 8);
  out.ts = static_cast<int64_t>(get_le64(v.data() + 16));
  out.fingerprint = v.substr(24);
  return true;
}

// idem_by_time: ts (big-endian, negative clamped to 0) | key -> empty
std::string idem_time_key(int64_t ts, std::string_view key) {
  std::string k(8, '\0');
  put_be64(&k[0], static_cast<uint64_t>(std::max<int64_t>(ts, 0)));
  k.append(key);
  return k;
}

constexpr std::string_view meta_format = "format";

// A read transaction that aborts itself.
class read_txn {
 public:
  explicit read_txn(MDB_env* env) { rc_ = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn_); }
  ~read_txn() {
    if (rc_ == MDB_SUCCESS) mdb_txn_abort(txn_);
  }
  read_txn(const read_txn&) = delete;
  read_txn& operator=(const read_txn&) = delete;
  int rc() const { return rc_; }
  MDB_txn* get() const { return txn_; }

 private:
  MDB_txn* txn_ = nullptr;
  int rc_ = 0;
};

// A cursor that closes itself (before its transaction ends).
class cursor {
 public:
  cursor(MDB_txn* txn, MDB_dbi dbi) { rc_ = mdb_cursor_open(txn, dbi, &c_); }
  ~cursor() {
    if (rc_ == MDB_SUCCESS) mdb_cursor_close(c_);
  }
  cursor(const cursor&) = delete;
  cursor& operator=(const cursor&) = delete;
  int rc() const { return rc_; }
  MDB_cursor* get() const { return c_; }

 private:
  MDB_cursor* c_ = nullptr;
  int rc_ = 0;
};

}  // namespace

// ---- record codec ------------------------------------------------------------

// format u8 | varint zigzag(ts) | varint len, type | varint len, key |
// varint len, subject | varint len, data | CRC-32C u32 (little-endian) of
// everything before it.
namespace {

size_t varint_size(uint64_t v) {
  size_t n = 1;
  for (; v >= 0x80; v >>= 7) ++n;
  return n;
}

char* write_varint(char* p, uint64_t v) {
  for (; v >= 0x80; v >>= 7) *p++ = static_cast<char>(static_cast<uint8_t>(v) | 0x80);
  *p++ = static_cast<char>(v);
  return p;
}

// memcpy, with short copies (types, keys) inlined as two overlapping
// fixed-size moves instead of a library call.
void copy_bytes(char* dst, const char* src, size_t n) {
  if (n > 16) {
    std::memcpy(dst, src, n);
  } else if (n >= 8) {
    uint64_t a, b;
    std::memcpy(&a, src, 8);
    std::memcpy(&b, src + n - 8, 8);
    std::memcpy(dst, &a, 8);
    std::memcpy(dst + n - 8, &b, 8);
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, src, 4);
    std::memcpy(&b, src + n - 4, 4);
    std::memcpy(dst, &a, 4);
    std::memcpy(dst + n - 4, &b, 4);
  } else {
    for (size_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

char* write_bytes(char* p, const std::string& s) {
  p = write_varint(p, s.size());
  copy_bytes(p, s.data(), s.size());
  return p + s.size();
}

// The record's first bytes, format and ts, the same for every event of an
// append: encoded once.
struct record_prefix {
  char bytes[11] = {};  // format byte + varint of up to 10 bytes
  size_t size = 0;

  explicit record_prefix(int64_t ts) {
    bytes[0] = static_cast<char>(record_format);
    size = static_cast<size_t>(write_varint(bytes + 1, zigzag(ts)) - bytes);
  }
};

size_t field_size(const std::string& s) {
  return s.size() < 0x80 ? s.size() + 1 : s.size() + varint_size(s.size());
}

size_t record_size(const event_input& e, const record_prefix& prefix) {
  return prefix.size + field_size(e.type) + field_size(e.key) + field_size(e.subject) +
         field_size(e.data) + checksum_bytes;
}

// Writes the record of `e`, all but its checksum (see put_checksum), into the
// record_size(e, prefix) bytes at `out`.
// REQUIRES: `out` has room for record_padding more bytes beyond the record
// (the prefix is copied whole, a fixed-size copy; the fields overwrite the
// excess).
constexpr size_t record_padding = sizeof(record_prefix::bytes);
void write_record_body(const event_input& e, const record_prefix& prefix, char* out) {
  std::memcpy(out, prefix.bytes, sizeof prefix.bytes);
  char* p = out + prefix.size;
  p = write_bytes(p, e.type);
  p = write_bytes(p, e.key);
  p = write_bytes(p, e.subject);
  write_bytes(p, e.data);
}

void put_checksum(char* record, size_t size, uint32_t sum) {
  char* p = record + size - checksum_bytes;
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(sum >> (8 * i));
}

}  // namespace

void encode_event_record(const event_input& e, int64_t ts, std::string& out) {
  record_prefix prefix{ts};
  size_t start = out.size(), size = record_size(e, prefix);
  out.resize(start + size + record_padding);
  write_record_body(e, prefix, &out[start]);
  out.resize(start + size);
  put_checksum(&out[start], size, checksum(std::string_view(&out[start], size - checksum_bytes)));
}

result<event> decode_event_record(uint64_t offset, std::string_view record) {
  auto corrupt = [&](const char* what) {
    return status{errc::corruption, "the log record at offset " + std::to_string(offset) +
                                        " is corrupt (" + what + ")"};
  };
  if (record.size() < 1 + checksum_bytes) return corrupt("too short");
  auto body = record.substr(0, record.size() - checksum_bytes);
  uint32_t stored = 0;
  for (size_t i = 0; i < 4; ++i)
    stored |= uint32_t{static_cast<uint8_t>(record[body.size() + i])} << (8 * i);
  if (stored != checksum(body)) return corrupt("checksum mismatch");
  if (static_cast<uint8_t>(body.front()) != record_format) return corrupt("unknown format");
  body.remove_prefix(1);
  event ev;
  ev.offset = offset;
  uint64_t ts = 0;
  if (!get_varint(body, ts) || !get_bytes(body, ev.type) || !get_bytes(body, ev.key) ||
      !get_bytes(body, ev.subject) || !get_bytes(body, ev.data))
    return corrupt("truncated");
  if (!body.empty()) return corrupt("trailing bytes");
  ev.ts = unzigzag(ts);
  return ev;
}

// ---- the log -------------------------------------------------------------------

class event_log::impl {
 public:
  impl(environment& env, log_options options) : env_(env), options_(std::move(options)) {
    if (!options_.clock) options_.clock = system_clock_ms;
  }

  status open() {
    struct spec {
      const char* name;
      unsigned flags;
      MDB_dbi* dbi;
    };
    for (auto [name, flags, dbi] : {spec{"log", MDB_INTEGERKEY, &log_},
                                    spec{"idem", 0, &idem_},
                                    spec{"idem_by_time", 0, &idem_time_},
                                    spec{"subject", MDB_DUPSORT | MDB_DUPFIXED | MDB_INTEGERDUP,
                                         &subject_},
                                    spec{"meta", 0, &meta_}}) {
      auto h = env_.database(name, flags);
      if (!h) return h.error();
      *dbi = *h;
    }
    if (auto st = check_format(); !st) return st;
    return load_head();
  }

  std::vector<result<append_outcome>> append(const std::vector<checked_append>& group);
  result<std::vector<event>> read(uint64_t from, size_t limit) const;
  result<std::vector<uint64_t>> offsets_of_subject(const std::string& subject) const;
  result<std::optional<append_outcome>> find_idempotency_key(const std::string& key) const;
  uint64_t head() const { return head_.load(std::memory_order_acquire); }

 private:
  // An LMDB error; a panic makes the environment refuse further writes.
  status lmdb_error(int rc, const char* what) {
    auto st = lmdb_status(rc, what);
    if (rc == MDB_PANIC)
      env_.fail({errc::io_error, st.message() + "; writes are refused until the process restarts"});
    return st;
  }

  status check_format();
  status load_head();
  status append_request_in(MDB_txn* txn, MDB_cursor* log_cursor, const checked_append& req,
                           int64_t ts, uint64_t& next, result<append_outcome>& out,
                           bool& dirty);
  status append_events(MDB_txn* txn, MDB_cursor* log_cursor, const checked_append& req,
                       int64_t ts, uint64_t& next);
  status prune_idempotency_keys(MDB_txn* txn, int64_t now, bool& dirty);

  environment& env_;
  log_options options_;
  MDB_dbi log_ = 0, idem_ = 0, idem_time_ = 0, subject_ = 0, meta_ = 0;
  std::atomic<uint64_t> head_{0};
  // Writer-only state (REQUIRES: the single writer).
  int64_t last_ts_ = 0;
  std::vector<char> buffer_;  // records being encoded, reused across appends
};

status event_log::impl::check_format() {
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_.handle(), nullptr, 0, &txn); rc != MDB_SUCCESS)
    return lmdb_error(rc, "opening the log");
  MDB_val k = as_val(meta_format), v{};
  int rc = mdb_get(txn, meta_, &k, &v);
  if (rc == MDB_SUCCESS) {
    mdb_txn_abort(txn);
    if (v.mv_size != 8 || get_le64(static_cast<const char*>(v.mv_data)) != log_format)
      return {errc::corruption, "the data directory '" + env_.path() +
                                    "' holds a log format this build cannot read"};
    return status::ok();
  }
  if (rc != MDB_NOTFOUND) {
    mdb_txn_abort(txn);
    return lmdb_error(rc, "reading the log format");
  }
  char buf[8];
  put_le64(buf, log_format);
  MDB_val nv{8, buf};
  if (rc = mdb_put(txn, meta_, &k, &nv, 0); rc != MDB_SUCCESS) {
    mdb_txn_abort(txn);
    return lmdb_error(rc, "writing the log format");
  }
  return env_.commit(txn);
}

// The head is the key of the last record (records are never deleted, see
// docs/storage.md), and the last timestamp is that record's.
status event_log::impl::load_head() {
  read_txn txn{env_.handle()};
  if (txn.rc() != MDB_SUCCESS) return lmdb_error(txn.rc(), "reading the log head");
  cursor c{txn.get(), log_};
  if (c.rc() != MDB_SUCCESS) return lmdb_error(c.rc(), "reading the log head");
  MDB_val k{}, v{};
  int rc = mdb_cursor_get(c.get(), &k, &v, MDB_LAST);
  if (rc == MDB_NOTFOUND) return status::ok();
  if (rc != MDB_SUCCESS) return lmdb_error(rc, "reading the last log record");
  uint64_t head = 0;
  std::memcpy(&head, k.mv_data, sizeof head);
  auto last = decode_event_record(head, as_view(v));
  if (!last) return last.error();
  last_ts_ = last->ts;
  head_.store(head, std::memory_order_release);
  return status::ok();
}

std::vector<result<append_outcome>> event_log::impl::append(
    const std::vector<checked_append>& group) {
  auto fail_all = [&](const status& st) {
    return std::vector<result<append_outcome>>(group.size(), result<append_outcome>(st));
  };
  if (group.empty()) return {};
  if (auto st = env_.sticky_error(); !st) return fail_all(st);

  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_.handle(), nullptr, 0, &txn); rc != MDB_SUCCESS)
    return fail_all(lmdb_error(rc, "starting an append"));
  const int64_t now = options_.clock();
  const int64_t ts = std::max(now, last_ts_);
  uint64_t next = head() + 1;
  bool dirty = false;

  std::vector<result<append_outcome>> out(group.size(), result<append_outcome>(append_outcome{}));
  status st;
  {
    cursor log_cursor{txn, log_};
    if (log_cursor.rc() != MDB_SUCCESS) st = lmdb_error(log_cursor.rc(), "opening the log");
    for (size_t i = 0; st && i < group.size(); ++i)
      st = append_request_in(txn, log_cursor.get(), group[i], ts, next, out[i], dirty);
  }
  if (st) st = prune_idempotency_keys(txn, now, dirty);
  if (!st || !dirty) {
    mdb_txn_abort(txn);  // nothing to keep (all replays or errors), or a failure
    return st ? out : fail_all(st);
  }
  if (st = env_.commit(txn); !st) return fail_all(st);
  head_.store(next - 1, std::memory_order_release);
  last_ts_ = ts;
  return out;
}

// Appends one request (or replays it); request-level failures go to `out`,
// a returned error fails the whole group.
status event_log::impl::append_request_in(MDB_txn* txn, MDB_cursor* log_cursor,
                                          const checked_append& req, int64_t ts, uint64_t& next,
                                          result<append_outcome>& out, bool& dirty) {
  const auto& key = req.idempotency_key();
  if (!key.empty()) {
    MDB_val k = as_val(key), v{};
    int rc = mdb_get(txn, idem_, &k, &v);
    if (rc == MDB_SUCCESS) {
      idem_entry known;
      if (!decode_idem(as_view(v), known))
        return {errc::corruption, "the stored idempotency key '" + key + "' is corrupt"};
      if (known.fingerprint != req.fingerprint()) {
        out = status{errc::idempotency_key_reused,
                     "the Idempotency-Key '" + key +
                         "' was already used with a different body; use a new key"};
      } else {
        known.outcome.replayed = true;
        out = known.outcome;
      }
      return status::ok();
    }
    if (rc != MDB_NOTFOUND) return lmdb_error(rc, "looking up an idempotency key");
  }
  const uint64_t first = next;
  if (auto st = append_events(txn, log_cursor, req, ts, next); !st) return st;
  dirty = true;
  if (!key.empty()) {
    auto value = encode_idem(first, req.events().size(), ts, req.fingerprint());
    auto by_time = idem_time_key(ts, key);
    MDB_val k = as_val(key), v = as_val(value), tk = as_val(by_time), tv{0, nullptr};
    if (int rc = mdb_put(txn, idem_, &k, &v, 0); rc != MDB_SUCCESS)
      return lmdb_error(rc, "storing an idempotency key");
    if (int rc = mdb_put(txn, idem_time_, &tk, &tv, 0); rc != MDB_SUCCESS)
      return lmdb_error(rc, "storing an idempotency key");
  }
  out = append_outcome{first, req.events().size(), false};
  return status::ok();
}

status event_log::impl::append_events(MDB_txn* txn, MDB_cursor* log_cursor,
                                      const checked_append& req, int64_t ts, uint64_t& next) {
  // Records are encoded a chunk at a time into one reused buffer, so that the
  // checksums of a chunk are computed together (crc32c_many), then appended.
  constexpr size_t chunk = 16;
  std::array<std::string_view, chunk> bodies;
  std::array<uint32_t, chunk> sums;
  std::array<size_t, chunk> sizes;
  const record_prefix prefix{ts};
  const auto& events = req.events();
  for (size_t base = 0; base < events.size(); base += chunk) {
    const size_t n = std::min(chunk, events.size() - base);
    size_t total = 0;
    for (size_t i = 0; i < n; ++i) total += sizes[i] = record_size(events[base + i], prefix);
    if (buffer_.size() < total + record_padding) buffer_.resize(total + record_padding);
    char* p = buffer_.data();
    for (size_t i = 0; i < n; ++i) {
      write_record_body(events[base + i], prefix, p);
      bodies[i] = std::string_view(p, sizes[i] - checksum_bytes);
      p += sizes[i];
    }
    detail::crc32c_many(bodies.data(), sums.data(), n);
    for (size_t i = 0; i < n; ++i) {
      const event_input& e = events[base + i];
      char* record = const_cast<char*>(bodies[i].data());
      put_checksum(record, sizes[i], sums[i]);
      uint64_t offset = next;
      MDB_val k{sizeof offset, &offset}, v{sizes[i], record};
      if (int rc = mdb_cursor_put(log_cursor, &k, &v, MDB_APPEND); rc != MDB_SUCCESS)
        return lmdb_error(rc, "appending an event");
      if (!e.subject.empty()) {
        MDB_val sk = as_val(e.subject), sv{sizeof offset, &offset};
        if (int rc = mdb_put(txn, subject_, &sk, &sv, 0); rc != MDB_SUCCESS)
          return lmdb_error(rc, "indexing an event's subject");
      }
      ++next;
    }
  }
  return status::ok();
}

// Removes up to prune_per_commit keys older than the retention, oldest first,
// while more than idempotency_min_keys remain.
status event_log::impl::prune_idempotency_keys(MDB_txn* txn, int64_t now, bool& dirty) {
  if (options_.idempotency_prune_per_commit == 0) return status::ok();
  MDB_stat stat{};
  if (int rc = mdb_stat(txn, idem_, &stat); rc != MDB_SUCCESS)
    return lmdb_error(rc, "counting idempotency keys");
  uint64_t count = stat.ms_entries;
  if (count <= options_.idempotency_min_keys) return status::ok();
  const int64_t cutoff = now - static_cast<int64_t>(options_.idempotency_retention.count());
  cursor c{txn, idem_time_};
  if (c.rc() != MDB_SUCCESS) return lmdb_error(c.rc(), "pruning idempotency keys");
  for (unsigned n = 0; n < options_.idempotency_prune_per_commit; ++n) {
    if (count <= options_.idempotency_min_keys) break;
    MDB_val tk{}, tv{};
    int rc = mdb_cursor_get(c.get(), &tk, &tv, MDB_FIRST);
    if (rc == MDB_NOTFOUND) break;
    if (rc != MDB_SUCCESS) return lmdb_error(rc, "pruning idempotency keys");
    if (tk.mv_size < 8) return {errc::corruption, "an idempotency time index entry is corrupt"};
    auto key_ts = static_cast<int64_t>(get_be64(static_cast<const char*>(tk.mv_data)));
    if (key_ts >= cutoff) break;
    auto key = as_view(tk).substr(8);
    MDB_val k = as_val(key), v{};
    rc = mdb_get(txn, idem_, &k, &v);
    idem_entry entry;
    // Delete the key only if this index entry is the key's own (same ts).
    if (rc == MDB_SUCCESS && decode_idem(as_view(v), entry) &&
        std::max<int64_t>(entry.ts, 0) == key_ts) {
      if (rc = mdb_del(txn, idem_, &k, nullptr); rc != MDB_SUCCESS)
        return lmdb_error(rc, "pruning an idempotency key");
      --count;
    } else if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
      return lmdb_error(rc, "pruning idempotency keys");
    }
    if (rc = mdb_cursor_del(c.get(), 0); rc != MDB_SUCCESS)
      return lmdb_error(rc, "pruning idempotency keys");
    dirty = true;
  }
  return status::ok();
}

result<std::vector<event>> event_log::impl::read(uint64_t from, size_t limit) const {
  std::vector<event> events;
  if (limit == 0) return events;
  from = std::max<uint64_t>(from, 1);
  uint64_t h = head();
  if (from > h) return events;
  read_txn txn{env_.handle()};
  if (txn.rc() != MDB_SUCCESS) return lmdb_status(txn.rc(), "reading the log");
  cursor c{txn.get(), log_};
  if (c.rc() != MDB_SUCCESS) return lmdb_status(c.rc(), "reading the log");
  events.reserve(std::min<uint64_t>(limit, h - from + 1));
  MDB_val k{sizeof from, &from}, v{};
  int rc = mdb_cursor_get(c.get(), &k, &v, MDB_SET_RANGE);
  while (rc == MDB_SUCCESS && events.size() < limit) {
    uint64_t offset = 0;
    std::memcpy(&offset, k.mv_data, sizeof offset);
    auto ev = decode_event_record(offset, as_view(v));
    if (!ev) return ev.error();
    events.push_back(std::move(*ev));
    rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT);
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return lmdb_status(rc, "reading the log");
  return events;
}

result<std::vector<uint64_t>> event_log::impl::offsets_of_subject(
    const std::string& subject) const {
  std::vector<uint64_t> offsets;
  if (subject.empty() || subject.size() > max_subject_bytes) return offsets;
  read_txn txn{env_.handle()};
  if (txn.rc() != MDB_SUCCESS) return lmdb_status(txn.rc(), "reading the subject index");
  cursor c{txn.get(), subject_};
  if (c.rc() != MDB_SUCCESS) return lmdb_status(c.rc(), "reading the subject index");
  MDB_val k = as_val(subject), v{};
  int rc = mdb_cursor_get(c.get(), &k, &v, MDB_SET_KEY);
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
  return offsets;
}

result<std::optional<append_outcome>> event_log::impl::find_idempotency_key(
    const std::string& key) const {
  if (key.empty() || key.size() > 128) return std::optional<append_outcome>{};
  read_txn txn{env_.handle()};
  if (txn.rc() != MDB_SUCCESS) return lmdb_status(txn.rc(), "reading idempotency keys");
  MDB_val k = as_val(key), v{};
  int rc = mdb_get(txn.get(), idem_, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<append_outcome>{};
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "reading idempotency keys");
  idem_entry entry;
  if (!decode_idem(as_view(v), entry))
    return status{errc::corruption, "the stored idempotency key '" + key + "' is corrupt"};
  return std::optional<append_outcome>{entry.outcome};
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
  return impl_->append(group);
}

result<append_outcome> event_log::append(checked_append request) {
  std::vector<checked_append> group;
  group.push_back(std::move(request));
  return std::move(impl_->append(group).front());
}

result<std::vector<event>> event_log::read(uint64_t from, size_t limit) const {
  return impl_->read(from, limit);
}

uint64_t event_log::head() const { return impl_->head(); }

result<std::vector<uint64_t>> event_log::offsets_of_subject(const std::string& subject) const {
  return impl_->offsets_of_subject(subject);
}

result<std::optional<append_outcome>> event_log::find_idempotency_key(
    const std::string& key) const {
  return impl_->find_idempotency_key(key);
}

}  // namespace derive
