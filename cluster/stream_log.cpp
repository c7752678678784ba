#include "cluster/stream_log.hpp"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include <sstream>

#include "cluster/stream_message.hpp"
#include "core/hash.hpp"

namespace derive {

namespace {

constexpr const char* events_header = "Derive-Events";
// The message id, "<node>-<counter>": the ingest drops a message whose id an
// earlier one carried (stream_id_store). Not Nats-Msg-Id: nats-server 2.9.10's
// replicas can diverge when a publish with one is retried across a leader
// change (docs/architecture.md, "Cluster mode").
constexpr const char* id_header = "Derive-Msg-Id";
// The id header of messages published by earlier versions.
constexpr const char* legacy_id_header = "Nats-Msg-Id";
// Polls in a row (about seconds) that must find the node's position missing
// from the stream before the follower stops: a new stream leader may still
// be applying messages it has committed.
constexpr int missing_polls_to_fail = 10;
// How long one publish or API request waits before it is tried again.
constexpr int64_t request_wait_ms = 2000;
// The follower asks for the stream's state this often.
constexpr auto poll_interval = std::chrono::seconds(1);
// Messages ingested per durable flush, at most.
constexpr int max_ingest_batch = 256;

using clock_type = std::chrono::steady_clock;

int64_t system_clock_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string nats_error(natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0)) {
  std::string out = natsStatus_GetText(s);
  if (jerr != 0) out += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
  return out;
}

// A random id for this process: message ids are "<node>-<counter>".
std::string random_node_id() {
  std::random_device rd;
  std::mt19937_64 gen((uint64_t{rd()} << 32) ^ rd());
  static const char hex[] = "0123456789abcdef";
  std::string id;
  for (uint64_t v = gen(), i = 0; i < 16; ++i, v >>= 4) id.push_back(hex[v & 15]);
  return id;
}

// The id and body digest of `msg` (id "" when it carries none).
stream_message_id message_id(natsMsg* msg) {
  stream_message_id m;
  const char* id = nullptr;
  if ((natsMsgHeader_Get(msg, id_header, &id) == NATS_OK && id) ||
      (natsMsgHeader_Get(msg, legacy_id_header, &id) == NATS_OK && id))
    m.id = id;
  m.digest = detail::hash64(
      std::string_view(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))),
      detail::hash_a);
  return m;
}

}  // namespace

class stream_log::impl {
 public:
  impl(event_log& log, cluster_options options, notify_fn notify)
      : log_(log), options_(std::move(options)), subject_(options_.stream + ".log"),
        node_(random_node_id()), notify_(std::move(notify)) {}
  ~impl();

  status connect();
  status ensure_stream();
  status check_position();
  void start(std::function<void(uint64_t)> ingested);
  void publish(const std::vector<checked_append>& group, outcomes_fn done);
  void stop();
  cluster_status status_now() const;
  size_t max_message_bytes() const {
    return static_cast<size_t>(natsConnection_GetMaxPayload(nc_));
  }

 private:
  struct ingested_message {
    std::string id;
    std::vector<result<append_outcome>> outcomes;
  };

  void follow();
  natsSubscription* subscribe(uint64_t from);
  void poll_stream();
  // Asks the stream for its message at this node's position: stops the
  // follower when it is another one, or missing several polls in a row.
  void check_position_message(uint64_t last);
  // False (and the follower failed) when `found`, the stream's message at
  // this node's position, is not the one this node ingested there.
  bool same_message(const stream_message_id& found);
  // Ingests `msg` (destroys it); false when the follower must stop.
  bool ingest(natsMsg* msg, std::vector<ingested_message>& done);
  void finish(std::vector<ingested_message>& done);
  void fail(std::string error);
  template <typename... Parts>
  void note(note_level level, const Parts&... parts) const {
    if (!notify_) return;
    std::ostringstream out;
    (out << ... << parts);
    notify_(level, out.str());
  }
  std::string error() const;
  void fail_pending(const std::string& why);

  event_log& log_;
  cluster_options options_;
  std::string subject_;
  std::string node_;
  notify_fn notify_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  uint64_t next_id_ = 0;  // the publisher's

  std::function<void(uint64_t)> ingested_;
  std::thread follower_;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;  // guards the members below
  struct waiting {
    size_t requests;
    outcomes_fn done;
  };
  std::unordered_map<std::string, waiting> pending_;  // by message id
  std::string error_;
  uint64_t stream_first_ = 0, stream_last_ = 0;
  std::atomic<uint64_t> published_{0}, retries_{0}, ingested_count_{0}, duplicates_{0};
  int missing_polls_ = 0;  // the follower's
};

stream_log::impl::~impl() {
  stop();
  if (js_) jsCtx_Destroy(js_);
  if (nc_) natsConnection_Destroy(nc_);
}

status stream_log::impl::connect() {
  natsOptions* opts = nullptr;
  std::vector<const char*> urls;
  for (auto& u : options_.nats_urls) urls.push_back(u.c_str());
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);  // forever
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 100);
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, request_wait_ms);
  if (s == NATS_OK) s = natsConnection_Connect(&nc_, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK)
    return {errc::unavailable, "cannot connect to the NATS servers " +
                                   options_.nats_urls.front() + "...: " + nats_error(s) +
                                   "; are they running?"};
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = request_wait_ms;
  if (s = natsConnection_JetStream(&js_, nc_, &jo); s != NATS_OK)
    return {errc::unavailable, "NATS JetStream: " + nats_error(s)};
  return status::ok();
}

// Finds the stream or creates it; a fresh cluster answers only once it has
// elected its meta leader, so this tries until publish_timeout.
status stream_log::impl::ensure_stream() {
  const auto deadline = clock_type::now() + options_.publish_timeout;
  std::string last;
  do {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si, js_, options_.stream.c_str(), nullptr, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
      jsStreamConfig cfg;
      jsStreamConfig_Init(&cfg);
      const char* subjects[] = {subject_.c_str()};
      cfg.Name = options_.stream.c_str();
      cfg.Subjects = subjects;
      cfg.SubjectsLen = 1;
      cfg.Storage = js_FileStorage;
      cfg.Replicas = options_.replicas;
      // The stream is the log: nothing may delete from it behind a node's back.
      cfg.DenyDelete = true;
      cfg.DenyPurge = true;
      s = js_AddStream(&si, js_, &cfg, nullptr, &jerr);
      if (s == NATS_OK)
        note(stream_log::info, "created stream ", options_.stream, " (", options_.replicas,
                 " replicas)");
    }
    if (s == NATS_OK) {
      std::lock_guard<std::mutex> lock(mu_);
      stream_first_ = si->State.FirstSeq;
      stream_last_ = si->State.LastSeq;
      jsStreamInfo_Destroy(si);
      return status::ok();
    }
    last = nats_error(s, jerr);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (clock_type::now() < deadline);
  return {errc::unavailable,
          "the NATS servers did not give stream '" + options_.stream + "': " + last};
}

// A log with events but no stream position was written by the embedded log;
// one ahead of the stream followed another stream.
status stream_log::impl::check_position() {
  const uint64_t seq = log_.stream_seq();
  if (seq == 0 && log_.written_head() > 0)
    return {errc::invalid_parameter,
            "the data directory holds an embedded log (" + std::to_string(log_.written_head()) +
                " events): cluster mode needs an empty data directory or one that followed "
                "stream '" + options_.stream + "'"};
  std::lock_guard<std::mutex> lock(mu_);
  if (seq > stream_last_)
    return {errc::invalid_parameter,
            "this node's log has ingested stream sequence " + std::to_string(seq) +
                " but stream '" + options_.stream + "' ends at " + std::to_string(stream_last_) +
                ": the stream was recreated or is another one; use a new data directory"};
  return status::ok();
}

void stream_log::impl::start(std::function<void(uint64_t)> ingested) {
  ingested_ = std::move(ingested);
  follower_ = std::thread([this] { follow(); });
}

void stream_log::impl::stop() {
  if (stopping_.exchange(true)) return;
  if (follower_.joinable()) follower_.join();
  fail_pending("this node stopped before it ingested the append; it may or may not have been "
               "appended: retry it with the same Idempotency-Key");
}

void stream_log::impl::fail_pending(const std::string& why) {
  std::unordered_map<std::string, waiting> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending.swap(pending_);
  }
  for (auto& [id, w] : pending)
    w.done(std::vector<result<append_outcome>>(w.requests,
                                               result<append_outcome>(errc::unavailable, why)));
}

void stream_log::impl::fail(std::string error) {
  note(stream_log::error, error);
  {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = error;
  }
  fail_pending(error);
}

std::string stream_log::impl::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void stream_log::impl::publish(const std::vector<checked_append>& group, outcomes_fn done) {
  auto failed = [&](const std::string& why) {
    done(std::vector<result<append_outcome>>(group.size(),
                                             result<append_outcome>(errc::unavailable, why)));
  };
  if (auto e = error(); !e.empty()) return failed("this node cannot follow the stream: " + e);
  if (stopping_) return failed("this node is stopping");
  const std::string id = node_ + "-" + std::to_string(++next_id_);
  const std::string body = encode_stream_message(group, system_clock_ms());
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.emplace(id, waiting{group.size(), std::move(done)});
  }
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, subject_.c_str(), nullptr, body.data(),
                                static_cast<int>(body.size()));
  if (s == NATS_OK)
    s = natsMsgHeader_Set(msg, events_header, std::to_string(event_count(group)).c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(msg, id_header, id.c_str());
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = request_wait_ms;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const auto deadline = clock_type::now() + options_.publish_timeout;
  // Tried again on any failure (no leader during an election, a lost
  // answer, a reconnect), unless the follower already ingested a copy: the
  // stream may store the message more than once, the ingest keeps the first.
  auto answered = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    return pending_.count(id) == 0;
  };
  while (s == NATS_OK) {
    jsPubAck* ack = nullptr;
    jerr = static_cast<jsErrCode>(0);
    s = js_PublishMsg(&ack, js_, msg, &po, &jerr);
    if (ack) jsPubAck_Destroy(ack);
    if (s == NATS_OK || s == NATS_MAX_PAYLOAD || clock_type::now() >= deadline || stopping_ ||
        answered())
      break;
    retries_.fetch_add(1, std::memory_order_relaxed);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    s = NATS_OK;
  }
  natsMsg_Destroy(msg);
  if (s == NATS_OK || answered()) {  // answered: the follower ingested a copy
    published_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  outcomes_fn mine;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = pending_.find(id); it != pending_.end()) {
      mine = std::move(it->second.done);
      pending_.erase(it);
    }
  }
  if (!mine) return;  // the follower answered: the message is in the stream after all
  status why{errc::unavailable, "the cluster's stream did not acknowledge the append (" +
                                    nats_error(s, jerr) +
                                    "); it may or may not have been appended: retry it with "
                                    "the same Idempotency-Key"};
  if (s == NATS_MAX_PAYLOAD)
    why = {errc::payload_too_large,
           "the append takes " + std::to_string(body.size()) +
               " bytes in a stream message, more than the NATS servers' max_payload (" +
               std::to_string(max_message_bytes()) + "): send fewer or smaller events"};
  mine(std::vector<result<append_outcome>>(group.size(), result<append_outcome>(why)));
}

natsSubscription* stream_log::impl::subscribe(uint64_t from) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = options_.stream.c_str();
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverByStartSequence;
  so.Config.OptStartSeq = from;
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (natsStatus s = js_SubscribeSync(&sub, js_, subject_.c_str(), nullptr, &so, &jerr);
      s != NATS_OK) {
    note(stream_log::warning, "cannot follow stream ", options_.stream, " yet: ", nats_error(s, jerr));
    return nullptr;
  }
  return sub;
}

// Refreshes the stream's state; a sequence this node still needs that the
// stream no longer has stops the follower; then checks the message at this
// node's position (also when the state could not be read).
void stream_log::impl::poll_stream() {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (js_GetStreamInfo(&si, js_, options_.stream.c_str(), nullptr, &jerr) != NATS_OK) {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t last_seen = stream_last_;
    lock.unlock();
    return check_position_message(last_seen);
  }
  const uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stream_first_ = first;
    stream_last_ = last;
  }
  const uint64_t needed = log_.stream_seq() + 1;
  if (needed <= last && needed < first)
    return fail("stream '" + options_.stream + "' no longer holds sequences " +
                std::to_string(needed) + ".." + std::to_string(first - 1) +
                " that this node has not ingested (retention or deletion): this node cannot "
                "follow; start it from an empty data directory only if the stream still holds "
                "everything");
  check_position_message(last);
}

// STREAM.MSG.GET is answered by the stream's leader: its message at this
// node's position must be the one this node ingested there, or this node
// followed another history (a JetStream replica out of sync) and its log
// differs from the others' from some point on. Errors of the request (no
// leader during an election, a timeout, a reconnect) are tried at the next poll.
void stream_log::impl::check_position_message(uint64_t last) {
  const uint64_t seq = log_.stream_seq();
  if (seq == 0 || log_.stream_message().id.empty()) return;
  natsMsg* msg = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetMsg(&msg, js_, options_.stream.c_str(), seq, nullptr, &jerr);
  if (s == NATS_OK) {
    std::unique_ptr<natsMsg, void (*)(natsMsg*)> owned(msg, natsMsg_Destroy);
    missing_polls_ = 0;
    same_message(message_id(msg));
    return;
  }
  if (jerr != JSNoMessageFoundErr) return;  // transient: asked again at the next poll
  if (++missing_polls_ < missing_polls_to_fail) return;
  fail("stream '" + options_.stream + "' no longer holds sequence " + std::to_string(seq) +
       " (it ends at " + std::to_string(last) + ") that this node ingested: the stream's "
       "history is not the one this node followed (a recreated stream, or a JetStream replica "
       "out of sync); this node stops following so that its log does not silently differ from "
       "the other nodes'");
}

bool stream_log::impl::same_message(const stream_message_id& found) {
  const stream_message_id mine = log_.stream_message();
  if (mine.id.empty() || found == mine) return true;
  fail("stream '" + options_.stream + "' holds message '" + found.id + "' at sequence " +
       std::to_string(log_.stream_seq()) + " where this node ingested message '" + mine.id +
       "'" + (found.id == mine.id ? " with another body" : "") +
       ": the stream's history changed under this node (a recreated stream, or a JetStream "
       "replica out of sync); this node stops following so that its log does not silently "
       "differ from the other nodes'");
  return false;
}

void stream_log::impl::follow() {
  natsSubscription* sub = nullptr;
  auto last_poll = clock_type::now() - poll_interval;
  auto last_progress = clock_type::now();
  std::vector<ingested_message> done;
  while (!stopping_ && error().empty()) {
    if (clock_type::now() - last_poll >= poll_interval) {
      poll_stream();
      last_poll = clock_type::now();
      continue;
    }
    // From the last message ingested when there is one: it comes first and
    // is compared with the one this node ingested there (same_message).
    if (!sub && !(sub = subscribe(std::max<uint64_t>(log_.stream_seq(), 1)))) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    natsMsg* msg = nullptr;
    natsStatus s = natsSubscription_NextMsg(&msg, sub, 100);
    if (s == NATS_TIMEOUT) {
      // An ordered consumer may stall across a leader change: follow anew
      // from the local position when the stream is ahead and nothing came.
      std::lock_guard<std::mutex> lock(mu_);
      if (stream_last_ > log_.stream_seq() && clock_type::now() - last_progress > poll_interval * 2) {
        natsSubscription_Destroy(sub);
        sub = nullptr;
        last_progress = clock_type::now();
      }
      continue;
    }
    if (s != NATS_OK) {
      note(stream_log::warning, "following stream ", options_.stream, ": ", nats_error(s),
               "; following again from ", log_.stream_seq() + 1);
      natsSubscription_Destroy(sub);
      sub = nullptr;
      continue;
    }
    bool go_on = ingest(msg, done);
    for (int n = 1; go_on && n < max_ingest_batch; ++n) {
      int queued = 0, bytes = 0;
      natsSubscription_GetPending(sub, &queued, &bytes);
      if (queued <= 0 || natsSubscription_NextMsg(&msg, sub, 1) != NATS_OK) break;
      go_on = ingest(msg, done);
    }
    finish(done);
    last_progress = clock_type::now();
    if (!go_on && sub) {
      natsSubscription_Destroy(sub);
      sub = nullptr;
    }
  }
  if (sub) natsSubscription_Destroy(sub);
}

bool stream_log::impl::ingest(natsMsg* msg, std::vector<ingested_message>& done) {
  std::unique_ptr<natsMsg, void (*)(natsMsg*)> owned(msg, natsMsg_Destroy);
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) return true;  // not a stream message
  const uint64_t seq = meta->Sequence.Stream;
  jsMsgMetaData_Destroy(meta);
  const uint64_t expected = log_.stream_seq() + 1;
  // Delivered again (a resubscription); the one at the position must match.
  if (seq < expected) return seq + 1 < expected || same_message(message_id(msg));
  if (seq > expected) {
    fail("stream '" + options_.stream + "' skipped sequences " + std::to_string(expected) + ".." +
         std::to_string(seq - 1) +
         " that this node has not ingested (retention or deletion): this node cannot follow");
    return false;
  }
  auto m = decode_stream_message(
      std::string_view(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))));
  if (!m) {
    fail("stream sequence " + std::to_string(seq) + ": " + m.error().message());
    return false;
  }
  const stream_message_id id = message_id(msg);
  auto outcomes = log_.ingest_deferred(m->group, ingest_mark{seq, m->ts, id});
  if (log_.stream_seq() < seq) {
    // The commit failed (storage_full, io_error): nothing was ingested.
    note(stream_log::error, "ingesting stream sequence ", seq, ": ",
         outcomes.empty() ? "the commit failed" : outcomes.front().error().message(),
         "; trying again");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    return false;
  }
  ingested_count_.fetch_add(1, std::memory_order_relaxed);
  // A copy of an earlier message: nothing appended, its publisher was
  // answered with the first copy's outcomes.
  if (outcomes.empty()) {
    duplicates_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (id.id.size() > node_.size() && id.id.compare(0, node_.size(), node_) == 0 &&
      id.id[node_.size()] == '-')
    done.push_back({id.id, std::move(outcomes)});
  return true;
}

// Makes the ingested messages durable, then answers their publishers here.
void stream_log::impl::finish(std::vector<ingested_message>& done) {
  if (auto s = log_.sync(); !s) {
    fail("the local log cannot sync: " + s.message());
    done.clear();
    return;
  }
  for (auto& m : done) {
    outcomes_fn fn;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = pending_.find(m.id); it != pending_.end()) {
        fn = std::move(it->second.done);
        pending_.erase(it);
      }
    }
    if (fn) fn(std::move(m.outcomes));
  }
  done.clear();
  if (ingested_) ingested_(log_.head());
}

cluster_status stream_log::impl::status_now() const {
  cluster_status st;
  st.reachable = natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
  char url[256] = {0};
  if (st.reachable && natsConnection_GetConnectedUrl(nc_, url, sizeof(url)) == NATS_OK)
    st.server = url;
  st.ingested_seq = log_.stream_seq();
  st.head = log_.head();
  st.messages_published = published_.load(std::memory_order_relaxed);
  st.publish_retries = retries_.load(std::memory_order_relaxed);
  st.messages_ingested = ingested_count_.load(std::memory_order_relaxed);
  st.duplicates_dropped = duplicates_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  st.stream_first_seq = stream_first_;
  st.stream_last_seq = stream_last_;
  st.lag = stream_last_ > st.ingested_seq ? stream_last_ - st.ingested_seq : 0;
  st.error = error_;
  return st;
}

// ---- stream_log ------------------------------------------------------------------

result<std::unique_ptr<stream_log>> stream_log::open(event_log& log, cluster_options options,
                                                     notify_fn notify) {
  if (options.nats_urls.empty())
    return status{errc::invalid_parameter, "cluster mode needs at least one NATS URL"};
  if (options.stream.empty() || options.stream.find_first_of(".*> \t") != std::string::npos)
    return status{errc::invalid_parameter,
                  "the stream name '" + options.stream + "' must be a NATS name: no '.', '*', "
                  "'>' or spaces"};
  if (options.replicas < 1 || options.replicas > 5)
    return status{errc::invalid_parameter, "replicas must be 1..5, not " +
                                               std::to_string(options.replicas)};
  auto i = std::make_unique<impl>(log, std::move(options), std::move(notify));
  if (auto s = i->connect(); !s) return s;
  if (auto s = i->ensure_stream(); !s) return s;
  if (auto s = i->check_position(); !s) return s;
  return std::unique_ptr<stream_log>(new stream_log(std::move(i)));
}

stream_log::stream_log(std::unique_ptr<impl> impl) : impl_(std::move(impl)) {}
stream_log::~stream_log() = default;

void stream_log::start(std::function<void(uint64_t)> ingested) {
  impl_->start(std::move(ingested));
}

void stream_log::publish(const std::vector<checked_append>& group, outcomes_fn done) {
  impl_->publish(group, std::move(done));
}

size_t stream_log::max_message_bytes() const { return impl_->max_message_bytes(); }

void stream_log::stop() { impl_->stop(); }

cluster_status stream_log::state() const { return impl_->status_now(); }

}  // namespace derive
