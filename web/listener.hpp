#pragma once
// Internal to web/ (Beast): the listening socket. Include only from web/*.cpp
// files that compile Beast code.

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include <derive/status.hpp>
#include "web/sessions.hpp"

namespace derive::web {

// Accepts connections (on `accept_ioc`, no lane's); each is dealt to the
// next lane in turn that is not busy, where it gets its own strand and an
// HTTP session (start_http_session), within the connection limits.
//
// Busy: a lane's thread has not run a pulse (a no-op handler posted to it)
// for busy_after, so a handler holds it (an application's heavy query). A
// pulse is posted to each lane without one at every accept and at every
// tick of the sessions' timer (pulse_lanes). When every lane is busy the
// one whose pulse has waited least gets the connection.
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
  // Posts a pulse to each lane that has none pending. On the accept
  // thread (the sessions' timer calls it too).
  void pulse_lanes();

 private:
  // A lane's last pulse: pending until the lane's thread runs it.
  struct pulse {
    std::atomic<bool> pending{false};
    std::chrono::steady_clock::time_point posted;  // the accept thread's
  };
  static constexpr std::chrono::milliseconds busy_after{20};

  void do_accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  // The next lane in turn that is not busy (all busy: the one busy the
  // shortest).
  size_t pick_lane();
  // Within the connection limits: a session (after TLS detection on a TLS
  // port); else a 503 refusal. `socket` is the accept thread's: it moves to
  // a strand of `lane`.
  void admit(const io_lane& lane, tcp::socket socket);

  const std::vector<io_lane> lanes_;
  std::vector<std::shared_ptr<pulse>> pulses_;  // one per lane
  size_t next_ = 0;  // the lane of the next connection
  server_context& ctx_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_;
  bool stopped_ = false;
};

}  // namespace derive::web
