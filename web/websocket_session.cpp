// WebSocket sessions (protocol.md, "WebSocket: GET /v1/ws"): the transport.
// A session reads and parses messages, writes its send_queue, keeps the
// timers (stalled writes, pings, closing) and closes. What its subscriptions
// send, and when, is decided by `subscriptions` (web/subscriptions.hpp).
// Everything of a session runs on its strand; runtime callbacks (hub changes,
// append and wait_for completions) are posted to it through its lane's gate.
// The same code runs over plain TCP and over TLS (Stream: plain_stream or
// tls_stream). RFC 6455's framing is our own (web/ws_frame.hpp): the HTTP
// session checks the upgrade request, this session writes the 101 response,
// decodes the client's frames and encodes its own. What an idle connection
// holds is kept small (docs/benchmarks.md, "Idle subscribers"): a plain
// connection runs over the bare socket (no beast::tcp_stream and its timers:
// the HTTP session's timeouts end with the upgrade) and waits for it to become
// readable without a buffer; the session has no timer of its own (the
// server's ticker calls tick()).
#include <algorithm>
#include <type_traits>
#include <optional>
#include <mutex>
#include <utility>

#include "web/errors.hpp"
#include "web/send_queue.hpp"
#include "web/sessions.hpp"
#include "web/subscriptions.hpp"
#include "web/ws_frame.hpp"
#include "web/ws_protocol.hpp"

namespace derive::web {
namespace {

using clock = std::chrono::steady_clock;

// A connection being closed gets at least this long to take the close frame
// (after a stalled write: to take the rest of that write first).
constexpr auto min_close_grace = std::chrono::seconds(2);
// Bytes read from the socket at a time.
constexpr size_t read_piece_bytes = 64 * 1024;
// TLS: bytes the read waiting for a new message prepares (an idle TLS
// connection holds this much read buffer; a plain one none).
constexpr size_t idle_read_bytes = 256;

// The stream a session reads and writes frames on: a plain connection leaves
// beast::tcp_stream for its socket (the WebSocket session keeps its own
// deadlines); a TLS stream stays as it is (its state cannot be moved).
tcp::socket ws_transport(plain_stream&& s) { return s.release_socket(); }
tls_stream ws_transport(tls_stream&& s) { return std::move(s); }
template <class Stream>
using ws_transport_t = decltype(ws_transport(std::declval<Stream&&>()));

tcp::socket& socket_of(tcp::socket& s) { return s; }
tcp::socket& socket_of(beast::tcp_stream& s) { return s.socket(); }

// What a hub_inbox needs of its session, whatever its stream.
class inbox_owner : public session_base {
 public:
  virtual net::any_io_executor executor() = 0;
  // On the session's strand: handles what the inbox holds.
  virtual void drain_inbox() = 0;
};

// What the hub delivered to one session, in delivery order. The hub (a runtime
// thread) appends; the session drains it on its strand. The order of changes
// is the state rule, so it is kept here rather than left to how the gate and
// the strand order their posts; and a burst of batches costs one post. At most
// one drain is scheduled at a time, and a drain takes everything queued.
class hub_inbox {
 public:
  struct entry {
    uint64_t token = 0;
    std::vector<change_ptr> items;
    bool lost = false;  // on_lost instead of changes
  };

  hub_inbox(std::weak_ptr<inbox_owner> session, std::shared_ptr<post_gate> gate,
            io_executor io)
      : session_(std::move(session)), gate_(std::move(gate)), io_(io) {}

  // Any thread.
  void push(entry e);
  // On the session's strand: everything queued, oldest first.
  std::vector<entry> take() {
    std::lock_guard<std::mutex> lock(mu_);
    scheduled_ = false;
    return std::exchange(entries_, {});
  }

 private:
  std::mutex mu_;
  std::vector<entry> entries_;
  bool scheduled_ = false;
  std::weak_ptr<inbox_owner> session_;
  std::shared_ptr<post_gate> gate_;
  io_executor io_;
};

// Receives one hub subscription's changes. `token` names the hub
// subscription, so that changes of a subscription the session already
// replaced are ignored.
class session_sink : public change_sink {
 public:
  session_sink(std::shared_ptr<hub_inbox> inbox, uint64_t token)
      : inbox_(std::move(inbox)), token_(token) {}

  void on_changes(uint64_t, std::vector<change_ptr> items) override {
    inbox_->push({token_, std::move(items), false});
  }
  void on_lost(uint64_t) override { inbox_->push({token_, {}, true}); }

 private:
  std::shared_ptr<hub_inbox> inbox_;
  uint64_t token_;
};

template <class Stream>
class websocket_session : public inbox_owner,
                          public std::enable_shared_from_this<websocket_session<Stream>> {
  using transport = ws_transport_t<Stream>;
  static constexpr bool is_plain = std::is_same_v<transport, tcp::socket>;

 public:
  using std::enable_shared_from_this<websocket_session>::shared_from_this;
  using std::enable_shared_from_this<websocket_session>::weak_from_this;

  websocket_session(Stream&& stream, std::string received, server_context& ctx,
                    const io_lane& lane, ws_identity id, connection_ticket ticket)
      : stream_(ws_transport(std::move(stream))),
        in_(std::move(received)),
        decoder_(ctx.options.max_message_bytes),
        identity_(std::move(id)),
        ctx_(ctx),
        lane_(lane),
        ticket_(std::move(ticket)),
        queue_(ctx.options.send_queue_bytes),
        // inbox_ is made by run(), before any message is read.
        subs_(ctx.rt, ctx.options, ctx.stats, queue_, [this](uint64_t token) {
          return std::make_shared<session_sink>(inbox_, token);
        }) {
    ctx_.stats.ws_connections.fetch_add(1);
    last_received_ = clock::now();
  }

  ~websocket_session() override {
    if (!finished_) {
      subs_.clear();
      queue_.clear();
      sync_queue_gauge();
      ctx_.stats.ws_connections.fetch_sub(1);
    }
  }

  net::any_io_executor executor() override { return stream_.get_executor(); }

  // Answers the upgrade (already checked by the HTTP session: a valid
  // Sec-WebSocket-Key, version 13) with 101, then reads frames.
  void run(const http::request<http::string_body>& req) {
    inbox_ = std::make_shared<hub_inbox>(weak_from_this(), lane_.gate, lane_.executor());
    if constexpr (is_plain) {
      beast::error_code ec;
      stream_.non_blocking(true, ec);  // read_available() reads what the wait saw
    }
    auto key = req[http::field::sec_websocket_key];
    write_buf_ = "HTTP/1.1 101 Switching Protocols\r\nServer: derive\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
                 ws_accept_key(std::string_view(key.data(), key.size())) + "\r\n";
    if (identity_.protocol) write_buf_ += "Sec-WebSocket-Protocol: " + *identity_.protocol + "\r\n";
    write_buf_ += "\r\n";
    writing_ = true;
    write_started_ = clock::now();
    net::async_write(stream_, net::buffer(write_buf_),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->on_handshake_written(ec);
                     });
  }

  void shutdown() override {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->close_with(ws_close::shutting_down);
    });
  }

  void tick() override {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->on_tick(); });
  }

  // --- from the runtime, on the strand ---
  void drain_inbox() override {
    for (auto& e : inbox_->take()) {
      if (closing_) continue;
      if (e.lost) subs_.on_lost(e.token);
      else subs_.on_changes(e.token, std::move(e.items));
    }
    sync_queue_gauge();
    pump();
  }

 private:
  void on_handshake_written(beast::error_code ec) {
    writing_ = false;
    std::string().swap(write_buf_);
    if (finished_) return;
    if (ec) return finish();
    accepted_ = true;
    last_received_ = clock::now();
    process_input();  // the frames that came with the upgrade request, then the socket's
  }

  // --- reading ---
  // An idle plain connection holds no read buffer: it waits for the socket
  // to become readable, then reads what arrived into in_, decodes it, and
  // drops in_ once every byte is decoded. A TLS connection reads through its
  // ssl_stream into a small buffer between messages.
  bool can_read() const {
    return !closing_ && inflight_ < ctx_.options.max_inflight_requests &&
           queue_.message_bytes() <= ctx_.options.send_queue_bytes;
  }

  void do_read() {
    if (reading_ || finished_) return;
    if (!can_read() && !closing_) return;  // resumed by maybe_read()
    reading_ = true;
    if constexpr (is_plain) {
      stream_.async_wait(tcp::socket::wait_read,
                         [self = shared_from_this()](beast::error_code ec) {
                           if (ec) return self->on_read(ec, 0);
                           self->read_available();
                         });
    } else {
      size_t old = in_.size();
      bool idle = old == 0 && decoder_.between_messages();
      in_.resize(old + (idle ? idle_read_bytes : read_piece_bytes));
      stream_.async_read_some(net::buffer(in_.data() + old, in_.size() - old),
                              [self = shared_from_this(), old](beast::error_code ec, size_t n) {
                                self->in_.resize(old + n);
                                self->on_read(ec, n);
                              });
    }
  }

  // Plain: the socket is readable; reads what it holds (without blocking),
  // at most read_piece_bytes. The buffer grows by what arrived, not by a
  // whole piece (a resize zero-fills what it adds).
  void read_available() {
    beast::error_code ec;
    const size_t held = stream_.available(ec);
    const size_t want = ec ? read_piece_bytes : std::clamp<size_t>(held, 1, read_piece_bytes);
    size_t old = in_.size();
    in_.resize(old + want);
    size_t n = stream_.read_some(net::buffer(in_.data() + old, want), ec);
    in_.resize(old + n);
    if (ec == net::error::would_block || ec == net::error::try_again) {
      reading_ = false;
      return do_read();
    }
    on_read(ec, n);
  }

  void maybe_read() {
    if (!reading_ && can_read()) process_input();
  }

  void on_read(beast::error_code ec, size_t n) {
    reading_ = false;
    if (finished_) return;
    if (ec) return finish();  // the peer closed or reset the connection
    if (n > 0) {
      last_received_ = clock::now();
      ping_outstanding_ = false;
    }
    process_input();
  }

  // Decodes the frames in in_ while requests may be taken, then reads more.
  // Not reentrant (an event may close the session, which wants the client's
  // close frame read): the outer call reads on.
  void process_input() {
    if (decoding_) return;
    decoding_ = true;
    // Decoded bytes are dropped once per pass, not once per event: many small
    // messages in one read would otherwise move the rest of the buffer each.
    size_t pos = 0;
    while (!finished_ && (closing_ || can_read())) {
      size_t used = 0;
      auto ev = decoder_.decode(std::string_view(in_).substr(pos), used);
      pos += used;
      if (ev.what == ws_event::kind::need_more) break;
      if (ev.what == ws_event::kind::text) message_begun_.reset();
      on_event(std::move(ev));
    }
    in_.erase(0, pos);
    decoding_ = false;
    note_partial_message();
    if (in_.empty()) std::string().swap(in_);  // idle connections keep no read buffer
    if (finished_) return;
    if (closing_ || can_read()) do_read();
  }

  // A message begun (bytes of it received, or of a frame) must arrive whole
  // within idle_timeout, as an HTTP request must: a client trickling a message
  // byte by byte would otherwise hold its buffer for ever (pings do not help:
  // it keeps talking). Control frames in between do not restart the clock.
  void note_partial_message() {
    bool partial = !in_.empty() || !decoder_.between_messages();
    if (!partial) message_begun_.reset();
    else if (!message_begun_) message_begun_ = clock::now();
  }

  bool message_overdue(clock::time_point now) const {
    // While reading is paused (the server's own backlog) the client is not late.
    return message_begun_ && can_read() && now - *message_begun_ >= ctx_.options.idle_timeout;
  }

  void on_event(ws_event ev) {
    switch (ev.what) {
      case ws_event::kind::text:
        if (closing_) return;
        handle_message(ev.payload);
        return pump();
      case ws_event::kind::binary:
        return close_with(ws_close::binary_message);
      case ws_event::kind::ping:
        // Only the latest ping waits for its pong (RFC 6455, 5.5.3): a
        // client that pings without reading holds one pong, not a queue.
        if (!close_queued_) pending_pong_ = std::move(ev.payload);
        return pump();
      case ws_event::kind::pong:
        ping_outstanding_ = false;
        return;
      case ws_event::kind::close:
        return on_peer_close(ev.code);
      case ws_event::kind::failed:
        if (decoder_.close_received()) return on_peer_close(ev.code, std::move(ev.payload));
        if (ev.code == ws_message_too_big) return close_with(ws_close::message_too_big);
        if (ev.code == ws_invalid_payload) return close_with(ws_close::invalid_utf8);
        return close_with(ws_close_frame{ev.code, std::move(ev.payload)});
      case ws_event::kind::need_more:
        return;
    }
  }

  // The client's close frame arrived: our close frame answers it (echoing
  // its code, or refusing it with `code`), then the connection closes.
  void on_peer_close(uint16_t code, std::string reason = {}) {
    peer_closed_ = true;
    if (close_sent_) return hard_close();
    close_with(ws_close_frame{code, std::move(reason)});
  }

  // --- requests ---
  void handle_message(std::string_view text) {
    auto parsed = parse_ws_request(text);
    if (auto* err = std::get_if<ws_error>(&parsed)) {
      return answer(encode_ws_error(err->id, err->code, err->message));
    }
    auto& req = std::get<ws_request>(parsed);
    std::visit([&](auto& op) { handle(req.id, op); }, req.op);
    sync_queue_gauge();
  }

  void answer(std::string msg) {
    queue_.push_message(std::move(msg));
    sync_queue_gauge();
  }

  // --- authorization (docs/security.md): one check per request ---
  // Queues the refusal and returns true when the rules refuse.
  bool refused(const std::string& id, const verdict& v) {
    if (!v) return false;
    answer(encode_ws_error(id, v->unauthenticated ? http_code::unauthorized : http_code::forbidden,
                           v->message));
    return true;
  }

  void handle(const std::string& id, ws_auth& op) {
    if (!ctx_.auth) {
      return answer(encode_ws_error(id, to_string(errc::invalid_parameter),
                                    "this server does not use tokens"));
    }
    auto who = ctx_.auth->authenticate(op.token, unix_now());
    if (auto* d = std::get_if<denial>(&who)) {
      return answer(encode_ws_error(id, http_code::unauthorized, d->message));
    }
    auto& p = std::get<principal>(who);
    const auto& current = identity_.who.token;
    if (current && current->sub != p.token->sub) {
      return answer(encode_ws_error(
          id, http_code::forbidden,
          "this connection belongs to " + current->sub +
              "; a token for another subject needs a new connection"));
    }
    answer(encode_authenticated(id, p.token->sub, p.token->expires));
    identity_.who = std::move(p);
  }

  // When the connection's token expires, its subscriptions end and it
  // continues as anonymous (docs/protocol.md, "auth").
  void check_token_expiry() {
    const auto& token = identity_.who.token;
    if (!ctx_.auth || !token || unix_now() < ctx_.auth->expiry(*token)) return;
    identity_.who = principal{};
    subs_.end_all(ws_code::token_expired,
                  "the token expired; send an auth message with a new token, then subscribe "
                  "again (with \"from\" to resume)");
    sync_queue_gauge();
    pump();
  }

  void handle(const std::string& id, ws_subscribe& op) {
    if (ctx_.auth) {
      const auto& f = op.filter;
      if (refused(id, f.key ? ctx_.auth->read_key(identity_.who, f.view, *f.key)
                            : ctx_.auth->read_prefix(identity_.who, f.view, f.prefix))) {
        return;
      }
    }
    subs_.subscribe(id, std::move(op));
  }
  void handle(const std::string& id, ws_unsubscribe&) { subs_.unsubscribe(id); }

  void handle(const std::string& id, ws_append& op) {
    if (ctx_.auth && refused(id, ctx_.auth->append(identity_.who, op.request.events()))) return;
    const auto& limits = ctx_.routes.limits();
    bool with_key = !op.request.idempotency_key().empty();
    auto client = client_key(identity_.who, ticket_->address());
    if (auto limited = limits->admit(client, with_key)) {
      ctx_.stats.appends_limited.fetch_add(1);
      return answer(encode_ws_error(id, limited->code, limited->message,
                                    static_cast<uint64_t>(limited->retry_after.count())));
    }
    ++inflight_;
    auto gate = lane_.gate;
    ctx_.rt.append(std::move(op.request), [weak = weak_from_this(), gate, io = lane_.executor(),
                                           id, limits, with_key,
                                           client](result<append_outcome> res) {
      if (with_key) limits->settle(client, res && !res->replayed);
      post_to_session(weak, *gate, io, [id, res = std::move(res)](websocket_session& s) {
        s.finish_request(res ? encode_appended(id, *res)
                             : encode_ws_error(id, res.error()));
      });
    });
  }

  void handle(const std::string& id, ws_get& op) {
    if (ctx_.auth && refused(id, ctx_.auth->read_key(identity_.who, op.view, op.key))) return;
    if (!op.after) return answer(read_value(id, op.view, op.key));
    ++inflight_;
    auto gate = lane_.gate;
    ctx_.rt.wait_for(op.view, *op.after, op.timeout,
                     [weak = weak_from_this(), gate, io = lane_.executor(), id,
                      view = op.view, key = op.key](status st) {
                       post_to_session(weak, *gate, io, [=](websocket_session& s) {
                         s.finish_request(st ? s.read_value(id, view, key)
                                             : encode_ws_error(id, st));
                       });
                     });
  }

  std::string read_value(const std::string& id, const std::string& view, const std::string& key) {
    auto read = read_key(ctx_.rt, view, key);
    if (!read) return encode_ws_error(id, read.error());
    return encode_value(id, key, read->value, read->offset);
  }

  // An append or a waiting get completed (on the strand).
  void finish_request(std::string msg) {
    --inflight_;
    if (closing_) return;
    answer(std::move(msg));
    pump();
    maybe_read();
  }

  // --- writing ---
  // Writes the next frames when the socket is free: control frames first
  // (pongs, a ping, the close frame); then, unless closing, messages: control
  // messages first; when there are none, a subscription waiting for its
  // snapshot may start (subscriptions::start_waiting); then change batches.
  void pump() {
    if (writing_ || finished_ || !accepted_) return;
    if (pending_pong_) {  // ahead of a ping or our close frame
      control_out_.insert(0, ws_frame(ws_opcode::pong, *pending_pong_));
      pending_pong_.reset();
    }
    if (!control_out_.empty()) {
      write_buf_ = std::exchange(control_out_, std::string());
      writing_close_ = close_queued_ && !close_sent_;
      return start_write(false);
    }
    if (closing_) return;
    subs_.start_waiting();
    auto frame = queue_.pop();
    sync_queue_gauge();
    if (!frame) return;
    inflight_frame_ = std::move(*frame);
    // The items' bytes are serialized once and shared by every subscriber;
    // each frame copies them into this connection's one buffer, so that the
    // write is a single buffer. A gather list of two pieces per item costs
    // Asio the square of its length on partial writes, and fragments of it
    // cost one write operation each (both measured: docs/benchmarks.md, "web").
    write_buf_ = ws_frame_header(ws_opcode::text, inflight_frame_.size());
    inflight_frame_.for_each_piece([&](std::string_view p) { write_buf_.append(p); });
    start_write(true);
  }

  void start_write(bool message) {
    writing_ = true;
    write_started_ = clock::now();
    net::async_write(stream_, net::buffer(write_buf_),
                     [self = shared_from_this(), message](beast::error_code ec, size_t) {
                       self->on_write(ec, message);
                     });
  }

  void on_write(beast::error_code ec, bool message) {
    writing_ = false;
    inflight_frame_ = out_frame{};
    if (write_buf_.capacity() > max_kept_write_buffer) std::string().swap(write_buf_);
    if (finished_) return;
    if (ec) return hard_close();
    if (message) ctx_.stats.ws_messages_sent.fetch_add(1);
    if (std::exchange(writing_close_, false)) {
      close_sent_ = true;
      // The closing handshake is complete, or it cannot be: after a
      // protocol error nothing the client sends is read (RFC 6455, 7.1.7).
      if (peer_closed_ || decoder_.done()) return hard_close();
    }
    pump();
    if (!writing_) std::string().swap(write_buf_);  // nothing more to send: keep no buffer
    maybe_read();
  }

  void sync_queue_gauge() {
    auto now = static_cast<int64_t>(queue_.change_bytes() + queue_.message_bytes());
    ctx_.stats.ws_queued_bytes.fetch_add(now - reported_bytes_);
    reported_bytes_ = now;
  }

  // --- closing ---
  // Sends a close frame (after the write in progress, if any) and closes the
  // TCP connection when the client's close frame arrives, or when it does
  // not within max(stalled_write_timeout, min_close_grace).
  void close_with(ws_close why) {
    close_with(ws_close_frame_for(why, ctx_.options.max_message_bytes));
  }

  void close_with(const ws_close_frame& frame) {
    if (closing_ || finished_) return;
    closing_ = true;
    subs_.clear();
    queue_.clear();  // nothing more is sent but the close frame
    sync_queue_gauge();
    hard_close_at_ = clock::now() + std::max<clock::duration>(ctx_.options.stalled_write_timeout,
                                                              min_close_grace);
    if (!accepted_) return hard_close();
    control_out_ += ws_encode_close(frame.code, frame.reason);
    close_queued_ = true;
    pump();
    if (!reading_) process_input();  // let the closing handshake complete
  }

  void hard_close() {
    beast::error_code ec;
    socket_of(beast::get_lowest_layer(stream_)).close(ec);
    finish();
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    closing_ = true;
    subs_.clear();
    queue_.clear();  // unsent bytes leave the gauge with the connection
    sync_queue_gauge();
    beast::error_code ec;
    socket_of(beast::get_lowest_layer(stream_)).close(ec);
    ctx_.stats.ws_connections.fetch_sub(1);
    auto self = shared_from_this();
    ctx_.sessions.remove(this);
  }

  // --- deadlines: the handshake, stalled writes, pings, the closing deadline ---
  // Once per session_tick_period, from the server's ticker.
  void on_tick() {
    if (finished_) return;
    auto now = clock::now();
    if (!accepted_) {
      auto handshake = std::max<clock::duration>(ctx_.options.stalled_write_timeout,
                                                 std::chrono::seconds(1));
      if (now - write_started_ >= handshake) hard_close();
      return;
    }
    if (!closing_) subs_.release_old_snapshot();
    if (!closing_) check_token_expiry();
    if (closing_) {
      if (now >= hard_close_at_) return hard_close();
    } else if (writing_ && now - write_started_ >= ctx_.options.stalled_write_timeout) {
      ctx_.stats.ws_slow_closes.fetch_add(1);
      close_with(ws_close::stalled_reader);
    } else if (message_overdue(now)) {
      close_with(ws_close::slow_message);
    } else if (ping_outstanding_ && now - ping_sent_at_ >= ctx_.options.pong_timeout) {
      close_with(ws_close::no_pong);
    } else if (!ping_outstanding_ && now - last_received_ >= ctx_.options.ping_interval) {
      ping_outstanding_ = true;
      ping_sent_at_ = now;
      control_out_ += ws_frame(ws_opcode::ping, {});
      pump();
    }
  }

  transport stream_;  // the bare socket, or the TLS stream
  std::string in_;    // bytes received and not yet decoded (empty when idle)
  ws_decoder decoder_;
  ws_identity identity_;  // who is connected (changed by auth and by expiry)
  server_context& ctx_;
  const io_lane lane_;
  connection_ticket ticket_;
  std::shared_ptr<hub_inbox> inbox_;
  send_queue queue_;
  subscriptions subs_;  // uses queue_

  out_frame inflight_frame_;
  // The frames in flight; a buffer grown past max_kept_write_buffer by a
  // large batch is released after the write, and any buffer once nothing
  // more is queued, so idle connections stay small.
  static constexpr size_t max_kept_write_buffer = 64 * 1024;
  std::string write_buf_;
  std::string control_out_;  // control frames waiting for the socket
  std::optional<std::string> pending_pong_;  // the payload of the latest ping unanswered
  bool accepted_ = false;    // the 101 response is written
  bool writing_ = false;
  bool reading_ = false;
  bool closing_ = false;
  bool finished_ = false;
  bool ping_outstanding_ = false;
  bool close_queued_ = false;   // our close frame is in control_out_ or written
  bool writing_close_ = false;  // the write in flight carries it
  bool close_sent_ = false;
  bool peer_closed_ = false;  // the client's close frame arrived
  bool decoding_ = false;     // in process_input
  size_t inflight_ = 0;
  int64_t reported_bytes_ = 0;
  clock::time_point write_started_;
  clock::time_point last_received_;
  clock::time_point ping_sent_at_;
  clock::time_point hard_close_at_;
  std::optional<clock::time_point> message_begun_;  // a message is partly received
};

void hub_inbox::push(entry e) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.push_back(std::move(e));
  if (scheduled_) return;
  scheduled_ = true;
  post_to_session(session_, *gate_, io_, [](inbox_owner& s) { s.drain_inbox(); });
}

}  // namespace

std::chrono::steady_clock::duration session_tick_period(const server_options& options) {
  auto t = std::min({options.ping_interval, options.pong_timeout,
                     options.stalled_write_timeout}) / 4;
  return std::clamp<clock::duration>(t, std::chrono::milliseconds(5), std::chrono::seconds(1));
}

template <class Stream>
void start_websocket_session(server_context& ctx, const io_lane& lane, Stream stream,
                             http::request<http::string_body> req, ws_identity id,
                             connection_ticket ticket, std::string received) {
  auto session = std::make_shared<websocket_session<Stream>>(
      std::move(stream), std::move(received), ctx, lane, std::move(id), std::move(ticket));
  ctx.sessions.add(session);
  session->run(req);
}

template void start_websocket_session<plain_stream>(server_context&, const io_lane&,
                                                    plain_stream, http::request<http::string_body>,
                                                    ws_identity, connection_ticket,
                                                    std::string);
template void start_websocket_session<tls_stream>(server_context&, const io_lane&, tls_stream,
                                                  http::request<http::string_body>, ws_identity,
                                                  connection_ticket, std::string);

}  // namespace derive::web
