#include "web/listener.hpp"

#include <chrono>
#include <string>

#include <derive/logging.hpp>

namespace derive::web {

listener::listener(net::io_context& ioc, server_context& ctx)
    : ioc_(ioc), ctx_(ctx), acceptor_(net::make_strand(ioc)), retry_(acceptor_.get_executor()) {}

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

void listener::do_accept() {
  if (stopped_) return;
  acceptor_.async_accept(net::make_strand(ioc_),
                         beast::bind_front_handler(&listener::on_accept, shared_from_this()));
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
  start_http_session(ctx_, ioc_, std::move(socket));
  do_accept();
}

}  // namespace derive::web
