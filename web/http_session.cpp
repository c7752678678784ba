// HTTP sessions (protocol.md, "HTTP"). One strand per connection; requests
// on a connection are handled one at a time, in order, so pipelined requests
// get their responses in order. A WebSocket upgrade hands the connection to
// a websocket_session. The same code runs over plain TCP and over TLS
// (Stream: plain_stream or tls_stream).
#include <array>
#include <type_traits>

#include "core/json_text.hpp"
#include "web/errors.hpp"
#include "web/framing.hpp"
#include "web/header_tap.hpp"
#include "web/sessions.hpp"
#include "web/ws_frame.hpp"

namespace derive::web {
namespace {

// Bytes read and discarded at most after a reply that closes the connection
// (so that the client sees the reply instead of a reset), and for how long.
constexpr size_t drain_max_bytes = 8 * 1024 * 1024;
constexpr auto drain_timeout = std::chrono::seconds(1);

// The value of a header field, when the request has it.
std::optional<std::string_view> optional_field(const http::request<http::string_body>& req,
                                               http::field f) {
  auto it = req.find(f);
  if (it == req.end()) return std::nullopt;
  return std::string_view(it->value().data(), it->value().size());
}

// What RFC 6455 requires of an upgrade request beyond websocket::is_upgrade
// (GET, HTTP/1.1, Connection: upgrade, Upgrade: websocket): a
// Sec-WebSocket-Key and Sec-WebSocket-Version 13, each once (11.3.1, 11.3.5).
std::optional<http_reply> handshake_problem(const http::request<http::string_body>& req) {
  if (req.count(http::field::sec_websocket_key) > 1 ||
      req.count(http::field::sec_websocket_version) > 1) {
    return error_reply(400, http_code::bad_request,
                       "Sec-WebSocket-Key and Sec-WebSocket-Version may each appear only once");
  }
  auto version = req[http::field::sec_websocket_version];
  if (version != "13") {
    auto reply = error_reply(426, http_code::upgrade_required,
                             "this server speaks WebSocket version 13 (Sec-WebSocket-Version: 13)");
    reply.headers.emplace_back("Sec-WebSocket-Version", "13");
    return reply;
  }
  auto key = req[http::field::sec_websocket_key];
  if (!is_valid_ws_key(std::string_view(key.data(), key.size()))) {
    return error_reply(400, http_code::bad_request,
                       "Sec-WebSocket-Key must be the base64 of 16 bytes");
  }
  return std::nullopt;
}

template <class Stream>
class http_session : public session_base,
                     public std::enable_shared_from_this<http_session<Stream>> {
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

 public:
  using std::enable_shared_from_this<http_session>::shared_from_this;

  http_session(Stream&& stream, beast::flat_buffer&& received, server_context& ctx,
               const io_lane& lane, connection_ticket ticket, bool tls_required)
      : stream_(std::move(stream)),
        buffer_(ctx.options.max_header_bytes + ctx.options.max_body_bytes + 65536),
        ctx_(ctx),
        lane_(lane),
        ticket_(std::move(ticket)),
        tls_required_(tls_required) {
    auto n = received.size();
    buffer_.commit(net::buffer_copy(buffer_.prepare(n), received.data()));
    ctx_.stats.http_connections.fetch_add(1);
  }

  ~http_session() override {
    if (!finished_) ctx_.stats.http_connections.fetch_sub(1);
  }

  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&http_session::start, shared_from_this()));
  }

  void shutdown() override {
    net::post(stream_.get_executor(),
              beast::bind_front_handler(&http_session::on_shutdown, shared_from_this()));
  }

  net::any_io_executor executor() { return stream_.get_executor(); }

 private:
  enum class phase { reading, handling, writing, closing };

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  // TLS: the handshake (its first bytes are in buffer_) before the first read.
  void start() {
    if constexpr (is_tls) {
      lowest().expires_after(ctx_.options.idle_timeout);
      stream_.async_handshake(net::ssl::stream_base::server, buffer_.data(),
                              [self = shared_from_this()](beast::error_code ec, size_t used) {
                                if (self->finished_) return;
                                if (ec) return self->finish();
                                self->buffer_.consume(used);
                                self->do_read();
                              });
    } else {
      do_read();
    }
  }

  void do_read() {
    if (shutting_down_) return do_close();
    phase_ = phase::reading;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(ctx_.options.max_header_bytes));
    parser_->body_limit(ctx_.options.max_body_bytes);
    lowest().expires_after(ctx_.options.idle_timeout);
    raw_header_.clear();
    http::async_read_header(stream_, header_tap_, *parser_,
                            beast::bind_front_handler(&http_session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, size_t) {
    if (finished_) return;
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
        ec == beast::error::timeout || ec == net::error::connection_reset || ec == net::error::eof) {
      return do_close();
    }
    if (ec == http::error::header_limit) {
      return fail_request(error_reply(431, http_code::header_too_large,
                                      "the request header is larger than the limit of " +
                                          std::to_string(ctx_.options.max_header_bytes) +
                                          " bytes"));
    }
    if (ec == http::error::body_limit) {
      return fail_request(error_reply(413, to_string(errc::payload_too_large),
                                      "the request body is larger than the limit of " +
                                          std::to_string(ctx_.options.max_body_bytes) +
                                          " bytes"));
    }
    if (ec) {
      auto raw = buffer_.data();
      if (raw_idempotency_key_is_malformed(
              std::string_view(static_cast<const char*>(raw.data()), raw.size()))) {
        return fail_request(error_reply(
            400, to_string(errc::invalid_idempotency_key),
            "Idempotency-Key must be 1-128 visible ASCII characters (0x21-0x7e); "
            "no spaces or control characters"));
      }
      return fail_request(
          error_reply(400, http_code::bad_request, "malformed HTTP request: " + ec.message()));
    }
    auto& req = parser_->get();
    if (tls_required_) {
      return fail_request(error_reply(400, http_code::tls_required,
                                      "this port speaks TLS: use https:// (or wss://)"));
    }
    if (auto bad = framing_problem(raw_header_, req.version())) {
      return fail_request(error_reply(400, http_code::bad_request, *bad));
    }
    request_head head;
    head.method = std::string_view(req.method_string().data(), req.method_string().size());
    head.target = std::string_view(req.target().data(), req.target().size());
    head.chunked = parser_->chunked();
    if (auto n = parser_->content_length()) head.content_length = *n;
    if (auto it = req.find(http::field::host); it != req.end()) {
      head.host = std::string_view(it->value().data(), it->value().size());
    }
    if (auto it = req.find(http::field::origin); it != req.end()) {
      head.origin = std::string_view(it->value().data(), it->value().size());
    }
    if (auto bad = ctx_.routes.check_head(head)) return fail_request(std::move(*bad));

    if (websocket::is_upgrade(req)) return upgrade();
    if (parser_->is_done()) return handle_request();
    if (beast::iequals(req[http::field::expect], "100-continue")) return send_continue();
    read_body();
  }

  // The client waits for "100 Continue" before it sends the body.
  void send_continue() {
    auto res = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                  parser_->get().version());
    lowest().expires_after(ctx_.options.idle_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      if (self->finished_) return;
      if (ec) return self->do_close();
      self->read_body();
    });
  }

  void read_body() {
    lowest().expires_after(ctx_.options.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&http_session::on_body, shared_from_this()));
  }

  void on_body(beast::error_code ec, size_t) {
    if (finished_) return;
    if (ec == http::error::body_limit) {
      return fail_request(error_reply(413, to_string(errc::payload_too_large),
                                      "the request body is larger than the limit"));
    }
    if (ec) return do_close();
    handle_request();
  }

  // A reply to a request that cannot be read further: sent, then the
  // connection closes.
  void fail_request(http_reply reply) {
    reply.close = true;
    keep_alive_ = false;
    head_request_ = false;
    version_ = parser_ ? parser_->get().version() : 11;
    if (version_ == 0) version_ = 11;
    send(std::move(reply));
  }

  void upgrade() {
    auto& req = parser_->get();
    std::optional<std::string_view> origin;
    if (auto it = req.find(http::field::origin); it != req.end()) {
      origin = std::string_view(it->value().data(), it->value().size());
    }
    auto host = req[http::field::host];
    auto target = req.target();
    if (auto refused = ctx_.routes.check_upgrade(std::string_view(target.data(), target.size()),
                                                 origin,
                                                 std::string_view(host.data(), host.size()))) {
      keep_alive_ = req.keep_alive();
      head_request_ = false;
      version_ = req.version();
      return send(std::move(*refused));
    }
    auto identity = ctx_.routes.authenticate_upgrade(
        optional_field(req, http::field::authorization),
        optional_field(req, http::field::sec_websocket_protocol));
    if (auto* refused = std::get_if<http_reply>(&identity)) {
      keep_alive_ = req.keep_alive();
      head_request_ = false;
      version_ = req.version();
      return send(std::move(*refused));
    }
    if (auto refused = handshake_problem(req)) {
      keep_alive_ = req.keep_alive();
      head_request_ = false;
      version_ = req.version();
      return send(std::move(*refused));
    }
    // The connection now belongs to the WebSocket session, which answers 101.
    lowest().expires_never();
    finished_ = true;
    ctx_.stats.http_connections.fetch_sub(1);
    auto self = shared_from_this();
    start_websocket_session(ctx_, lane_, std::move(stream_), parser_->release(),
                            std::get<ws_identity>(std::move(identity)), std::move(ticket_),
                            beast::buffers_to_string(buffer_.data()));
    ctx_.sessions.remove(this);
  }

  void handle_request() {
    auto& req = parser_->get();
    http_request r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    if (auto it = req.find(http::field::content_type); it != req.end()) {
      r.content_type = std::string(it->value());
    }
    if (auto it = req.find("Idempotency-Key"); it != req.end()) {
      r.idempotency_key = std::string(it->value());
    }
    if (auto a = optional_field(req, http::field::authorization)) r.authorization = std::string(*a);
    r.body = std::move(req.body());
    r.remote_address = ticket_->address();
    head_request_ = req.method() == http::verb::head;
    writes_ = req.method() == http::verb::post;
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    phase_ = phase::handling;
    lowest().expires_never();  // waits for the runtime are bounded by the router
    uint64_t seq = ++request_seq_;
    std::weak_ptr<http_session> weak = shared_from_this();
    ctx_.routes.handle(
        std::move(r),
        [weak, seq](http_reply reply) {
          if (auto s = weak.lock()) s->on_reply(seq, std::move(reply));
        },
        make_post_fn(weak, lane_.gate, lane_.executor()));
  }

  // On the strand; stale replies (after a shutdown answered the request) are
  // ignored.
  void on_reply(uint64_t seq, http_reply reply) {
    if (finished_ || seq != request_seq_ || phase_ != phase::handling) return;
    send(std::move(reply));
  }

  template <class Message>
  void write_message(std::shared_ptr<Message> msg, bool close) {
    phase_ = phase::writing;
    lowest().expires_after(ctx_.options.idle_timeout);
    http::async_write(stream_, *msg,
                      [self = shared_from_this(), msg, close](beast::error_code ec, size_t) {
                        self->on_write(close, ec);
                      });
  }

  template <class Message>
  void set_headers(Message& res, const http_reply& reply, bool close) {
    res.set(http::field::server, "derive");
    res.set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) res.set(name, value);
    res.keep_alive(!close);
  }

  void send(http_reply reply) {
    bool close = reply.close || !keep_alive_ || shutting_down_;
    if (!reply.file.empty()) {
      http::file_body::value_type file;
      beast::error_code ec;
      file.open(reply.file.c_str(), beast::file_mode::scan, ec);
      if (!ec) {
        uint64_t size = file.size();
        ctx_.stats.record_http_response(200);
        if (head_request_) {
          auto res = std::make_shared<http::response<http::empty_body>>(http::status::ok, version_);
          set_headers(*res, reply, close);
          res->content_length(size);
          return write_message(std::move(res), close);
        }
        auto res = std::make_shared<http::response<http::file_body>>(
            std::piecewise_construct, std::make_tuple(std::move(file)),
            std::make_tuple(http::status::ok, version_));
        set_headers(*res, reply, close);
        res->content_length(size);
        return write_message(std::move(res), close);
      }
      reply = error_reply(404, http_code::not_found, "the file cannot be read");
    }
    if (!head_request_) {
      auto v = ctx_.unsent_responses.admit(reply.body.size(), ticket_->address(), charge_);
      if (v != response_budget::verdict::admitted) reply = overloaded_reply(v);
    }
    ctx_.stats.record_http_response(reply.status);
    write_reply(reply, close);
  }

  // A large response that does not fit max_unsent_response_bytes.
  http_reply overloaded_reply(response_budget::verdict v) {
    ctx_.stats.responses_overloaded.fetch_add(1);
    auto reply = error_reply(
        503, http_code::overloaded,
        v == response_budget::verdict::over_address
            ? "this client address already has an eighth of max_unsent_response_bytes in large "
              "responses it has not read yet; read them, or retry in a moment"
            : "the server already holds max_unsent_response_bytes in large responses that their "
              "clients have not read yet; retry in a moment, or ask for a smaller page (limit=)");
    reply.headers.emplace_back("Retry-After", "1");
    return reply;
  }

  // A reply with a string body: its head is formatted into head_ (the fields
  // Beast's serializer would write, in the same order), the body is moved to
  // body_, and both go out in one gathered write. head_ keeps its capacity
  // across requests; a large body is released with the reply.
  void write_reply(http_reply& reply, bool close) {
    head_.clear();
    head_ += version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    append_uint(head_, reply.status);
    head_ += ' ';
    auto reason = http::obsolete_reason(static_cast<http::status>(reply.status));
    head_.append(reason.data(), reason.size());
    head_ += "\r\nServer: derive\r\nContent-Type: ";
    head_ += reply.content_type;
    head_ += "\r\n";
    for (const auto& [name, value] : reply.headers) {
      head_ += name;
      head_ += ": ";
      head_ += value;
      head_ += "\r\n";
    }
    // As message::keep_alive(!close): HTTP/1.1 says close, HTTP/1.0 keep-alive.
    if (version_ >= 11 && close) head_ += "Connection: close\r\n";
    if (version_ < 11 && !close) head_ += "Connection: keep-alive\r\n";
    head_ += "Content-Length: ";
    append_uint(head_, reply.body.size());
    head_ += "\r\n\r\n";
    if (head_request_) body_.clear();
    else body_ = std::move(reply.body);
    phase_ = phase::writing;
    lowest().expires_after(ctx_.options.idle_timeout);
    std::array<net::const_buffer, 2> buffers{net::buffer(head_), net::buffer(body_)};
    net::async_write(stream_, buffers,
                     [self = shared_from_this(), close](beast::error_code ec, size_t) {
                       if (self->body_.capacity() > max_kept_body_bytes)
                         std::string().swap(self->body_);
                       self->charge_.reset();
                       self->on_write(close, ec);
                     });
  }

  void on_write(bool close, beast::error_code ec) {
    if (finished_) return;
    if (ec) return do_close();
    if (close || shutting_down_) return do_close();
    do_read();
  }

  // Half-closes, reads (and discards) what the client still sends for a
  // moment, then closes. TLS: sends close_notify and waits for the client's
  // for as long.
  void do_close() {
    if (finished_ || phase_ == phase::closing) return;
    phase_ = phase::closing;
    lowest().expires_after(drain_timeout);
    if constexpr (is_tls) {
      stream_.async_shutdown([self = shared_from_this()](beast::error_code) { self->finish(); });
    } else {
      beast::error_code ec;
      lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
      drained_ = 0;
      drain();
    }
  }

  void drain() {
    stream_.async_read_some(net::buffer(scratch_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > drain_max_bytes) return self->finish();
                              self->drain();
                            });
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    beast::error_code ec;
    lowest().socket().close(ec);
    ctx_.stats.http_connections.fetch_sub(1);
    auto self = shared_from_this();
    ctx_.sessions.remove(this);
  }

  void on_shutdown() {
    if (finished_) return;
    shutting_down_ = true;
    switch (phase_) {
      case phase::handling:
        // A read still waiting (after=) is answered now. An append is not:
        // its events may still commit, so it gets the runtime's answer (or,
        // after shutdown_timeout, a closed connection; the client retries
        // with its Idempotency-Key).
        if (writes_) return;
        return send(error_reply(503, to_string(errc::unavailable), "the server is shutting down"));
      case phase::reading:
        return finish();
      case phase::writing:  // on_write closes
      case phase::closing:
        return;
    }
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::string raw_header_;  // the request header as received (web/framing.hpp)
  std::string head_;        // the head of the reply being written (write_reply)
  std::string body_;        // its body
  response_budget::charge charge_;  // body_ against max_unsent_response_bytes
  static constexpr size_t max_kept_body_bytes = 64 * 1024;  // larger ones are released
  header_tap header_tap_{buffer_, raw_header_};
  std::optional<http::request_parser<http::string_body>> parser_;
  server_context& ctx_;
  const io_lane lane_;
  connection_ticket ticket_;
  const bool tls_required_;
  phase phase_ = phase::reading;
  bool keep_alive_ = true;
  bool head_request_ = false;
  bool writes_ = false;  // the request being handled may change the log
  unsigned version_ = 11;
  bool shutting_down_ = false;
  bool finished_ = false;
  uint64_t request_seq_ = 0;
  size_t drained_ = 0;
  std::array<char, 16384> scratch_;
};

}  // namespace

template <class Stream>
void start_http_session(server_context& ctx, const io_lane& lane, Stream stream,
                        beast::flat_buffer buffer, connection_ticket ticket, bool tls_required) {
  auto session = std::make_shared<http_session<Stream>>(
      std::move(stream), std::move(buffer), ctx, lane, std::move(ticket), tls_required);
  ctx.sessions.add(session);
  session->run();
}

template void start_http_session<plain_stream>(server_context&, const io_lane&, plain_stream,
                                               beast::flat_buffer, connection_ticket, bool);
template void start_http_session<tls_stream>(server_context&, const io_lane&, tls_stream,
                                             beast::flat_buffer, connection_ticket, bool);

}  // namespace derive::web
