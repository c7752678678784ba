// WebSocket sessions (protocol.md, "WebSocket: GET /v1/ws"): the transport.
// A session reads and parses messages, writes its send_queue, keeps the
// timers (stalled writes, pings, closing) and closes. What its subscriptions
// send, and when, is decided by `subscriptions` (web/subscriptions.hpp).
// Everything of a session runs on its strand; runtime callbacks (hub changes,
// append and wait_for completions) are posted to it through the server's gate.
// The same code runs over plain TCP and over TLS (Stream: plain_stream or
// tls_stream). What an idle connection holds is kept small (docs/benchmarks.md,
// "Idle subscribers"): a plain connection's WebSocket stream runs over the bare
// socket (no beast::tcp_stream and its timers: the HTTP session's timeouts end
// with the upgrade), without permessage-deflate support, and the session has no
// timer of its own (the server's ticker calls tick()).
#include <algorithm>
#include <mutex>
#include <utility>

#include <boost/beast/websocket/ssl.hpp>

#include "web/errors.hpp"
#include "web/prefixed_stream.hpp"
#include "web/send_queue.hpp"
#include "web/sessions.hpp"
#include "web/subscriptions.hpp"
#include "web/ws_protocol.hpp"

namespace derive::web {
namespace {

using clock = std::chrono::steady_clock;

// A connection being closed gets at least this long to take the close frame
// (after a stalled write: to take the rest of that write first).
constexpr auto min_close_grace = std::chrono::seconds(2);
// Bytes of a client message read at a time.
constexpr size_t read_piece_bytes = 64 * 1024;
// Bytes the read waiting for a new message prepares: an idle connection
// holds this much read buffer (most requests fit; a longer one takes a
// second read).
constexpr size_t idle_read_bytes = 256;

// The stream below the WebSocket stream: a plain connection leaves
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
// thread) appends; the session drains it on its strand. Batches are not posted
// one by one: two posts may run on two Asio threads and reach the strand in
// either order, and the order of changes is the state rule. At most one drain
// is scheduled at a time, and a drain takes everything queued.
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
 public:
  using std::enable_shared_from_this<websocket_session>::shared_from_this;
  using std::enable_shared_from_this<websocket_session>::weak_from_this;

  websocket_session(Stream&& stream, std::string received, server_context& ctx,
                    net::io_context& ioc, ws_identity id, connection_ticket ticket)
      : ws_(ws_transport(std::move(stream)), std::move(received)),
        identity_(std::move(id)),
        ctx_(ctx),
        ioc_(ioc),
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

  net::any_io_executor executor() override { return ws_.get_executor(); }

  void run(http::request<http::string_body> req) {
    inbox_ = std::make_shared<hub_inbox>(weak_from_this(), ctx_.gate, ioc_.get_executor());
    auto handshake = std::max<clock::duration>(ctx_.options.stalled_write_timeout,
                                               std::chrono::seconds(1));
    websocket::stream_base::timeout t{handshake, websocket::stream_base::none(), false};
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator(
        [protocol = identity_.protocol](websocket::response_type& res) {
          res.set(http::field::server, "derive");
          if (protocol) res.set(http::field::sec_websocket_protocol, *protocol);
        }));
    // The message limit is enforced by on_read (not by Beast's
    // read_message_max): Beast 1.81 fails an oversized message by closing the
    // socket with the rest of the message unread, which resets the connection
    // and loses the 1009 close frame. Reading in pieces and closing ourselves
    // keeps reading (and discarding) until the client's close frame arrives.
    ws_.read_message_max(0);
    ws_.auto_fragment(false);
    ws_.text(true);
    ws_.control_callback([this](websocket::frame_type kind, beast::string_view) {
      last_received_ = clock::now();
      if (kind == websocket::frame_type::pong) ping_outstanding_ = false;
      // Beast echoes a close code it accepts; the ones it accepts beyond
      // RFC 6455's are answered with 1002 (Beast then sends no echo).
      if (kind == websocket::frame_type::close && ws_.reason().code != websocket::close_code::none &&
          !is_valid_client_close_code(ws_.reason().code)) {
        close_with(ws_close::bad_close_code);
      }
    });
    ws_.async_accept(req, beast::bind_front_handler(&websocket_session::on_accept,
                                                    shared_from_this()));
  }

  void shutdown() override {
    net::post(ws_.get_executor(), [self = shared_from_this()] {
      self->close_with(ws_close::shutting_down);
    });
  }

  void tick() override {
    net::post(ws_.get_executor(), [self = shared_from_this()] { self->on_tick(); });
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
  // --- reading ---
  void on_accept(beast::error_code ec) {
    if (ec) return finish();
    accepted_ = true;
    do_read();
  }

  bool can_read() const {
    return !closing_ && inflight_ < ctx_.options.max_inflight_requests &&
           queue_.message_bytes() <= ctx_.options.send_queue_bytes;
  }

  void do_read() {
    if (reading_ || finished_) return;
    if (!can_read() && !closing_) return;  // resumed by maybe_read()
    reading_ = true;
    const bool between_messages = read_buf_.size() == 0 && ws_.is_message_done();
    // Into a buffer sequence, not the dynamic-buffer overload: the pending
    // read of an idle connection is one composed operation smaller.
    ws_.async_read_some(read_buf_.prepare(between_messages ? idle_read_bytes : read_piece_bytes),
                        beast::bind_front_handler(&websocket_session::on_read, shared_from_this()));
  }

  void maybe_read() {
    if (!reading_ && can_read()) do_read();
  }

  void on_read(beast::error_code ec, size_t n) {
    reading_ = false;
    read_buf_.commit(n);
    if (finished_) return;
    if (ec) return finish();  // closed, or Beast already closed with 1007
    last_received_ = clock::now();
    ping_outstanding_ = false;
    if (closing_) {
      read_buf_.consume(read_buf_.size());
      return do_read();
    }
    if (ws_.got_binary()) {
      read_buf_.consume(read_buf_.size());
      close_with(ws_close::binary_message);
      return do_read();
    }
    if (read_buf_.size() > ctx_.options.max_message_bytes) {
      read_buf_.consume(read_buf_.size());
      close_with(ws_close::message_too_big);
      return do_read();
    }
    if (!ws_.is_message_done()) return do_read();  // the rest of this message
    std::string text = beast::buffers_to_string(read_buf_.data());
    read_buf_.consume(read_buf_.size());
    read_buf_.shrink_to_fit();  // idle connections keep no read buffer but the next read's
    handle_message(text);
    pump();
    maybe_read();
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
    auto gate = ctx_.gate;
    ctx_.rt.append(std::move(op.request), [weak = weak_from_this(), gate, io = ioc_.get_executor(),
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
    auto gate = ctx_.gate;
    ctx_.rt.wait_for(op.view, *op.after, op.timeout,
                     [weak = weak_from_this(), gate, io = ioc_.get_executor(), id,
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
  // Writes the next message when the socket is free: control messages first;
  // when there are none, a subscription waiting for its snapshot may start
  // (subscriptions::start_waiting); then change batches.
  void pump() {
    if (writing_ || closing_ || finished_) return;
    subs_.start_waiting();
    auto frame = queue_.pop();
    sync_queue_gauge();
    if (!frame) return;
    writing_ = true;
    write_started_ = clock::now();
    inflight_frame_ = std::move(*frame);
    // The items' bytes are serialized once and shared by every subscriber;
    // each frame copies them into this connection's one buffer, so that the
    // write is a single buffer. A gather list of two pieces per item costs
    // Asio the square of its length on partial writes, and fragments of it
    // cost one write operation each (both measured: docs/benchmarks.md, "web").
    write_buf_.clear();
    inflight_frame_.for_each_piece([&](std::string_view p) { write_buf_.append(p); });
    ws_.async_write(net::buffer(write_buf_),
                    beast::bind_front_handler(&websocket_session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, size_t) {
    writing_ = false;
    inflight_frame_ = out_frame{};
    if (write_buf_.capacity() > max_kept_write_buffer) std::string().swap(write_buf_);
    if (finished_) return;
    if (ec) return hard_close();
    ctx_.stats.ws_messages_sent.fetch_add(1);
    if (closing_) return;
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
  // TCP connection when the peer does not complete the closing handshake
  // within max(stalled_write_timeout, min_close_grace).
  void close_with(ws_close why) {
    if (closing_ || finished_) return;
    closing_ = true;
    subs_.clear();
    queue_.clear();  // nothing more is sent but the close frame
    sync_queue_gauge();
    hard_close_at_ = clock::now() + std::max<clock::duration>(ctx_.options.stalled_write_timeout,
                                                              min_close_grace);
    if (!ws_.is_open()) return hard_close();
    auto frame = ws_close_frame_for(why, ctx_.options.max_message_bytes);
    ws_.async_close(websocket::close_reason(static_cast<websocket::close_code>(frame.code),
                                            frame.reason),
                    [self = shared_from_this()](beast::error_code) { self->hard_close(); });
    if (!reading_) do_read();  // let the closing handshake complete
  }

  void hard_close() {
    beast::error_code ec;
    socket_of(beast::get_lowest_layer(ws_)).close(ec);
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
    socket_of(beast::get_lowest_layer(ws_)).close(ec);
    ctx_.stats.ws_connections.fetch_sub(1);
    auto self = shared_from_this();
    ctx_.sessions.remove(this);
  }

  // --- deadlines: stalled writes, pings, the closing deadline ---
  // Once per session_tick_period, from the server's ticker (the handshake
  // has its own deadline: Beast's handshake timeout).
  void on_tick() {
    if (!accepted_ || finished_) return;
    auto now = clock::now();
    if (!closing_) subs_.release_old_snapshot();
    if (!closing_) check_token_expiry();
    if (closing_) {
      if (now >= hard_close_at_) return hard_close();
    } else if (writing_ && now - write_started_ >= ctx_.options.stalled_write_timeout) {
      ctx_.stats.ws_slow_closes.fetch_add(1);
      close_with(ws_close::stalled_reader);
    } else if (ping_outstanding_ && now - ping_sent_at_ >= ctx_.options.pong_timeout) {
      close_with(ws_close::no_pong);
    } else if (!ping_outstanding_ && !pinging_ &&
               now - last_received_ >= ctx_.options.ping_interval) {
      ping_outstanding_ = true;
      pinging_ = true;
      ping_sent_at_ = now;
      ws_.async_ping({}, [self = shared_from_this()](beast::error_code) {
        self->pinging_ = false;
      });
    }
  }

  // Without permessage-deflate (not offered: docs/protocol.md), so no
  // deflate state either.
  websocket::stream<prefixed_stream<ws_transport_t<Stream>>, false> ws_;
  ws_identity identity_;  // who is connected (changed by auth and by expiry)
  server_context& ctx_;
  net::io_context& ioc_;
  connection_ticket ticket_;
  std::shared_ptr<hub_inbox> inbox_;
  beast::flat_buffer read_buf_;
  send_queue queue_;
  subscriptions subs_;  // uses queue_

  out_frame inflight_frame_;
  // The message in flight; a buffer grown past max_kept_write_buffer by a
  // large batch is released after the write, and any buffer once the queue
  // is empty, so idle connections stay small.
  static constexpr size_t max_kept_write_buffer = 64 * 1024;
  std::string write_buf_;
  bool accepted_ = false;  // ticks count from the handshake's end
  bool writing_ = false;
  bool reading_ = false;
  bool closing_ = false;
  bool finished_ = false;
  bool pinging_ = false;
  bool ping_outstanding_ = false;
  size_t inflight_ = 0;
  int64_t reported_bytes_ = 0;
  clock::time_point write_started_;
  clock::time_point last_received_;
  clock::time_point ping_sent_at_;
  clock::time_point hard_close_at_;
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
void start_websocket_session(server_context& ctx, net::io_context& ioc, Stream stream,
                             http::request<http::string_body> req, ws_identity id,
                             connection_ticket ticket, std::string received) {
  auto session = std::make_shared<websocket_session<Stream>>(
      std::move(stream), std::move(received), ctx, ioc, std::move(id), std::move(ticket));
  ctx.sessions.add(session);
  session->run(std::move(req));
}

template void start_websocket_session<plain_stream>(server_context&, net::io_context&,
                                                    plain_stream, http::request<http::string_body>,
                                                    ws_identity, connection_ticket,
                                                    std::string);
template void start_websocket_session<tls_stream>(server_context&, net::io_context&, tls_stream,
                                                  http::request<http::string_body>, ws_identity,
                                                  connection_ticket, std::string);

}  // namespace derive::web
