#pragma once
// Internal to web/ (Beast): the listening socket. Include only from web/*.cpp
// files that compile Beast code.

#include <memory>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include <derive/status.hpp>
#include "web/sessions.hpp"

namespace derive::web {

// Accepts connections (on `accept_ioc`, no lane's); each is dealt to the
// next lane in turn, where it gets its own strand and an HTTP session
// (start_http_session), within the connection limits.
class listener : public std::enable_shared_from_this<listener> {
 public:
  // REQUIRES: lanes not empty; accept_ioc outlives the listener's handlers.
  listener(net::io_context& accept_ioc, std::vector<io_lane> lanes, server_context& ctx);

  // Opens, binds and listens. Errors: io_error naming the step and the
  // endpoint (address in use, ...).
  status open(const tcp::endpoint& endpoint);
  // The bound port (0 when not bound).
  uint16_t port() const;
  // Starts accepting (on the acceptor's strand).
  void run();
  // Thread-safe: closes the acceptor; accepting stops.
  void stop();

 private:
  void do_accept();
  void on_accept(size_t lane, beast::error_code ec, tcp::socket socket);
  // Within the connection limits: a session (after TLS detection on a TLS
  // port); else a 503 refusal.
  void admit(const io_lane& lane, tcp::socket socket);

  const std::vector<io_lane> lanes_;
  size_t next_ = 0;  // the lane of the next connection
  server_context& ctx_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_;
  bool stopped_ = false;
};

}  // namespace derive::web
