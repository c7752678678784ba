// The server object: its lanes (an io_context, a gate and a thread each), the
// listener and the sessions' timer (an io_context and a thread of their own),
// and the orderly stop (protocol.md, "Shutdown").
#include <derive/web/server.hpp>

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>

#include <derive/logging.hpp>
#include "web/listener.hpp"
#include "web/sessions.hpp"
#include "web/tls.hpp"

namespace derive::web {

namespace {

// The Asio threads to run: `asked`, or (0) one per two hardware threads.
unsigned io_threads(unsigned asked) {
  if (asked > 0) return asked;
  return std::max(1u, std::thread::hardware_concurrency() / 2);
}

}  // namespace

class server::impl {
 public:
  impl(runtime& rt, server_options options) : ctx_(rt, std::move(options)) {}
  ~impl() { stop(); }

  status start() {
    if (!lanes_.empty()) return status{errc::invalid_parameter, "the server was already started"};
    ctx_.stopping = false;
    if (ctx_.options.auth) {
      auto auth = authorizer::make(*ctx_.options.auth);
      if (!auth) return auth.error();
      ctx_.auth = *auth;
    }
    beast::error_code ec;
    auto address = net::ip::make_address(ctx_.options.address, ec);
    if (ec) {
      return status{errc::invalid_parameter,
                    "cannot parse the address " + ctx_.options.address + ": " + ec.message()};
    }
    if (auto st = load_tls(); !st) return st;
    // One io_context per thread: no lock shared between the threads, and no
    // thread waking another for its handlers (concurrency hint 1: a lane's
    // own handlers queue without waking anyone).
    std::vector<io_lane> lanes;
    for (unsigned i = 0, n = io_threads(ctx_.options.threads); i < n; ++i) {
      auto& lane = lanes_.emplace_back();
      lane.ioc = std::make_unique<net::io_context>(1);
      lane.gate = std::make_shared<post_gate>();
      lanes.push_back({lane.ioc.get(), lane.gate});
    }
    // Accepting and the sessions' timer get a thread of their own: on a
    // lane, a handler busy for a second (an application's heavy query)
    // would hold up every new connection and every timeout with it.
    accept_.ioc = std::make_unique<net::io_context>(1);
    listener_ = std::make_shared<listener>(*accept_.ioc, std::move(lanes), ctx_);
    if (auto st = listener_->open(tcp::endpoint(address, ctx_.options.port)); !st) {
      listener_.reset();
      accept_.ioc.reset();
      lanes_.clear();
      return st;
    }
    port_ = listener_->port();
    listener_->run();
    ticker_.emplace(accept_.ioc->get_executor());
    ticking_ = true;
    arm_ticker();
    for (auto& lane : lanes_) {
      lane.work.emplace(lane.ioc->get_executor());
      threads_.emplace_back([ioc = lane.ioc.get()] { run_loop(*ioc); });
    }
    accept_.work.emplace(accept_.ioc->get_executor());
    accept_thread_ = std::thread([ioc = accept_.ioc.get()] { run_loop(*ioc); });
    return {};
  }

  void stop() {
    if (lanes_.empty()) return;
    ctx_.stopping = true;
    listener_->stop();
    ctx_.sessions.shutdown_all();
    ctx_.sessions.wait_empty(ctx_.options.shutdown_timeout);
    for (auto& lane : lanes_) lane.gate->close();
    ticking_ = false;  // closing sessions were ticked until now (their deadlines)
    accept_.work.reset();
    accept_.ioc->stop();
    for (auto& lane : lanes_) {
      lane.work.reset();
      lane.ioc->stop();
    }
    accept_thread_.join();
    for (auto& t : threads_) t.join();
    threads_.clear();
    ctx_.sessions.clear();
    listener_.reset();
    ticker_.reset();
    // Destroys the handlers that never ran. The acceptor's first: its
    // pending accept holds a socket and a strand of a lane.
    accept_.ioc.reset();
    lanes_.clear();
  }

  uint16_t port() const { return port_; }
  unsigned threads() const { return static_cast<unsigned>(threads_.size()); }

  status reload_tls() {
    if (!ctx_.tls) {
      return status{errc::invalid_parameter,
                    "TLS is off: set tls_cert_file and tls_key_file and start the server"};
    }
    auto st = ctx_.tls->load(ctx_.options.tls_cert_file, ctx_.options.tls_key_file);
    if (!st) log_error("web", "TLS reload failed, the previous certificate stays: ", st.message());
    else log_info("web", "TLS certificate reloaded from ", ctx_.options.tls_cert_file);
    return st;
  }

 private:
  // TLS on when both files are named; a first load that fails fails start().
  status load_tls() {
    const auto& o = ctx_.options;
    if (o.tls_cert_file.empty() && o.tls_key_file.empty()) return {};
    if (o.tls_cert_file.empty() || o.tls_key_file.empty()) {
      return status{errc::invalid_parameter,
                    "TLS needs both a certificate file and a key file (tls_cert_file, "
                    "tls_key_file)"};
    }
    if (ctx_.tls) return {};  // loaded by an earlier start (or reload)
    auto tls = std::make_shared<tls_store>();
    if (auto st = tls->load(o.tls_cert_file, o.tls_key_file); !st) return st;
    ctx_.tls = std::move(tls);
    return {};
  }

  // The sessions' one timer (session_base::tick). Only its own handler
  // touches ticker_ while the threads run; stop() ends the chain by the flag.
  void arm_ticker() {
    ticker_->expires_after(session_tick_period(ctx_.options));
    ticker_->async_wait([this](beast::error_code ec) {
      if (ec || !ticking_) return;
      ctx_.sessions.tick_all();
      listener_->pulse_lanes();
      arm_ticker();
    });
  }

  static void run_loop(net::io_context& ioc) {
    for (;;) {
      try {
        ioc.run();
        return;
      } catch (const std::exception& e) {
        log_error("web", "a handler threw: ", e.what());
      }
    }
  }

  // An Asio thread's io_context, the completion inbox runtime threads post
  // to it through (none for the accept thread's), and the guard that keeps
  // it running while idle.
  struct running_lane {
    std::unique_ptr<net::io_context> ioc;
    std::shared_ptr<post_gate> gate;
    std::optional<net::executor_work_guard<io_executor>> work;
  };

  server_context ctx_;
  std::vector<running_lane> lanes_;  // in the order of threads_
  running_lane accept_;  // the listener's and the ticker's (no gate)
  std::thread accept_thread_;
  std::shared_ptr<listener> listener_;
  std::optional<net::steady_timer> ticker_;
  std::atomic<bool> ticking_{false};
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
};

server::server(runtime& rt, server_options options)
    : impl_(std::make_unique<impl>(rt, std::move(options))) {}
server::~server() = default;
status server::start() { return impl_->start(); }
void server::stop() { impl_->stop(); }
uint16_t server::port() const { return impl_->port(); }
unsigned server::threads() const { return impl_->threads(); }
status server::reload_tls() { return impl_->reload_tls(); }

}  // namespace derive::web
