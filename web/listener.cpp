#include "web/listener.hpp"

#include <unistd.h>

#include <array>
#include <chrono>
#include <string>

#include <derive/logging.hpp>
#include "web/errors.hpp"
#include "web/router.hpp"
#include "web/tls.hpp"

namespace derive::web {
namespace {

// How long a refused connection may take to receive its answer.
constexpr auto refusal_timeout = std::chrono::seconds(1);

// Answers a connection over a limit with 503 too_many_connections, without
// reading its request, and closes it (after reading what arrives for at most
// refusal_timeout, so that the client sees the answer instead of a reset).
class refusal : public std::enable_shared_from_this<refusal> {
 public:
  refusal(tcp::socket&& socket, const std::string& why) : stream_(std::move(socket)) {
    std::string body = error_body(http_code::too_many_connections, why);
    text_ = "HTTP/1.1 503 Service Unavailable\r\nServer: derive\r\n"
            "Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
            "Content-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body;
  }

  void run() {
    stream_.expires_after(refusal_timeout);
    net::async_write(stream_, net::buffer(text_),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return;
                       beast::error_code ignored;
                       self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                       self->drain();
                     });
  }

 private:
  void drain() {
    stream_.async_read_some(net::buffer(scratch_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (!ec) self->drain();
                            });
  }

  beast::tcp_stream stream_;
  std::string text_;
  std::array<char, 4096> scratch_;
};

// On a TLS port: waits for the first bytes of a connection and hands it to
// an HTTPS session, or (no TLS handshake) to a plain session that answers
// 400 tls_required.
class tls_detector : public std::enable_shared_from_this<tls_detector> {
 public:
  tls_detector(tcp::socket&& socket, server_context& ctx, const io_lane& lane,
               connection_ticket ticket)
      : stream_(std::move(socket)), ctx_(ctx), lane_(lane), ticket_(std::move(ticket)) {}

  void run() {
    stream_.expires_after(ctx_.options.idle_timeout);
    beast::async_detect_ssl(stream_, buffer_,
                            beast::bind_front_handler(&tls_detector::on_detect,
                                                      shared_from_this()));
  }

 private:
  void on_detect(beast::error_code ec, bool is_tls) {
    if (ec || ctx_.stopping) return;  // the socket closes with this object
    if (!is_tls) {
      return start_http_session(ctx_, lane_, std::move(stream_), std::move(buffer_),
                                std::move(ticket_), true);
    }
    auto tls = ctx_.tls->current();
    start_http_session(ctx_, lane_, tls_stream(std::move(stream_), *tls), std::move(buffer_),
                       std::move(ticket_));
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  server_context& ctx_;
  const io_lane lane_;
  connection_ticket ticket_;
};

}  // namespace

listener::listener(net::io_context& accept_ioc, std::vector<io_lane> lanes,
                   server_context& ctx)
    : lanes_(std::move(lanes)),
      ctx_(ctx),
      acceptor_(net::make_strand(accept_ioc)),
      retry_(acceptor_.get_executor()) {
  for (size_t i = 0; i < lanes_.size(); ++i) pulses_.push_back(std::make_shared<pulse>());
}

status listener::open(const tcp::endpoint& endpoint) {
  beast::error_code ec;
  auto fail = [&](const char* what) {
    return status{errc::io_error, std::string("cannot ") + what + " " +
                                      endpoint.address().to_string() + ":" +
                                      std::to_string(endpoint.port()) + ": " + ec.message()};
  };
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return fail("open a socket for");
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return fail("set SO_REUSEADDR on");
  acceptor_.bind(endpoint, ec);
  if (ec) return fail("bind to");
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen on");
  return {};
}

uint16_t listener::port() const {
  beast::error_code ec;
  auto ep = acceptor_.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void listener::run() {
  net::dispatch(acceptor_.get_executor(),
                beast::bind_front_handler(&listener::do_accept, shared_from_this()));
}

void listener::stop() {
  net::post(acceptor_.get_executor(), [self = shared_from_this()] {
    self->stopped_ = true;
    beast::error_code ec;
    self->acceptor_.close(ec);
    self->retry_.cancel();
  });
}

void listener::pulse_lanes() {
  if (lanes_.size() < 2) return;  // nothing to choose
  const auto now = std::chrono::steady_clock::now();
  for (size_t i = 0; i < lanes_.size(); ++i) {
    auto& p = pulses_[i];
    if (p->pending.load(std::memory_order_acquire)) continue;
    p->pending.store(true, std::memory_order_relaxed);
    p->posted = now;
    net::post(*lanes_[i].ioc, [p] { p->pending.store(false, std::memory_order_release); });
  }
}

size_t listener::pick_lane() {
  using clock = std::chrono::steady_clock;
  const size_t n = lanes_.size();
  const auto now = clock::now();
  size_t lane = next_;
  auto least = clock::duration::max();
  for (size_t i = 0; i < n; ++i) {
    const size_t candidate = (next_ + i) % n;
    const auto& p = *pulses_[candidate];
    const auto waited =
        p.pending.load(std::memory_order_acquire) ? now - p.posted : clock::duration::zero();
    if (waited < busy_after) {
      lane = candidate;
      break;
    }
    if (waited < least) {  // every lane busy so far: the one busy the shortest
      least = waited;
      lane = candidate;
    }
  }
  next_ = (lane + 1) % n;
  return lane;
}

void listener::do_accept() {
  if (stopped_) return;
  acceptor_.async_accept(beast::bind_front_handler(&listener::on_accept, shared_from_this()));
}

void listener::on_accept(beast::error_code ec, tcp::socket socket) {
  if (stopped_ || ec == net::error::operation_aborted) return;
  if (ctx_.stopping) return;  // the socket closes as it goes out of scope
  if (ec) {
    // For example EMFILE: wait a little instead of spinning.
    log_warn("web", "accept: ", ec.message());
    retry_.expires_after(std::chrono::milliseconds(50));
    retry_.async_wait([self = shared_from_this()](beast::error_code) { self->do_accept(); });
    return;
  }
  beast::error_code nodelay_ec;
  socket.set_option(tcp::no_delay(true), nodelay_ec);
  const size_t lane = pick_lane();
  pulse_lanes();  // before the session: a pulse runs ahead of it on its lane
  admit(lanes_[lane], std::move(socket));
  do_accept();
}

void listener::admit(const io_lane& lane, tcp::socket accepted) {
  beast::error_code ec;
  auto remote = accepted.remote_endpoint(ec);
  if (ec) return;  // the client is already gone
  // Onto a strand of its lane: the descriptor changes hands.
  const auto protocol = remote.protocol();
  tcp::socket socket(net::make_strand(*lane.ioc));
  auto fd = accepted.release(ec);
  if (ec) return;
  socket.assign(protocol, fd, ec);
  if (ec) {
    ::close(fd);
    return;
  }
  std::string why;
  auto ticket = ctx_.connections.admit(remote.address().to_string(), why);
  if (!ticket) {
    ctx_.stats.record_http_response(503);
    ctx_.stats.connections_refused.fetch_add(1);
    std::make_shared<refusal>(std::move(socket), why)->run();
    return;
  }
  if (ctx_.tls) {
    std::make_shared<tls_detector>(std::move(socket), ctx_, lane, std::move(ticket))->run();
    return;
  }
  start_http_session(ctx_, lane, plain_stream(std::move(socket)), beast::flat_buffer(),
                     std::move(ticket));
}

}  // namespace derive::web
