#pragma once
// Internal to web/: the Beast side of the server. Include only from the
// web/*.cpp files that already compile Beast code (listener.cpp,
// http_session.cpp, websocket_session.cpp, server.cpp): every includer pays
// for these headers. Sessions run over a plain TCP stream or a TLS stream
// (tls_stream); both are instantiated in the session's .cpp.

#include <chrono>
#include <memory>
#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>

#include "web/server_context.hpp"

namespace derive::web {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using io_executor = net::io_context::executor_type;
using plain_stream = beast::tcp_stream;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;
// The connection's slot in the connection limits (held until it closes).
using connection_ticket = connection_limits::ticket_ptr;

// One Asio thread's share of the server: its io_context, run by that thread
// alone, and the completion inbox through which runtime threads post to it.
// Connections are dealt to the lanes in turn and stay on theirs.
struct io_lane {
  net::io_context* ioc = nullptr;
  std::shared_ptr<post_gate> gate;
  io_executor executor() const { return ioc->get_executor(); }
};

// Runs f(session&) on the session's strand, from any thread (runtime
// callbacks). Does nothing once the session is gone or its lane's gate is
// closed. Only a weak reference and an io_context executor (trivially
// destructible) are held, so a callback that outlives the server is harmless.
// The hop goes through the gate's completion inbox: what a runtime thread
// hands over in one burst (a group's outcomes, a batch's changes) reaches
// the io_context as one handler, which dispatches each function to its
// session's strand in the order queued. A session's gate and io_context are
// its lane's, run by one thread, so its bursts also run in the order queued;
// a stream that must stay ordered still says so itself, with one queue
// drained by one posted function at a time (websocket_session's hub_inbox).
// REQUIRES: Session has executor() returning its strand.
template <class Session, class F>
void post_to_session(const std::weak_ptr<Session>& weak, post_gate& gate, io_executor io, F&& f) {
  gate.queue(
      [weak, f = std::forward<F>(f)]() mutable {
        auto s = weak.lock();
        if (!s) return;
        auto ex = s->executor();
        net::dispatch(ex, [s = std::move(s), f = std::move(f)]() mutable { f(*s); });
      },
      [io](auto drain) { net::post(io, std::move(drain)); });
}

// The router's post_fn for one session.
template <class Session>
post_fn make_post_fn(std::weak_ptr<Session> weak, std::shared_ptr<post_gate> gate,
                     io_executor io) {
  return [weak = std::move(weak), gate = std::move(gate), io](std::function<void()> fn) {
    post_to_session(weak, *gate, io, [fn = std::move(fn)](Session&) { fn(); });
  };
}

// Takes over an accepted connection (http_session.cpp): registers the session
// in ctx.sessions and starts reading requests on the socket's strand (after
// the TLS handshake for a tls_stream). `buffer` holds bytes already read (the
// TLS detection). With `tls_required` (a plain connection to a TLS port)
// every request is answered 400 tls_required and the connection closed.
template <class Stream>
void start_http_session(server_context& ctx, const io_lane& lane, Stream stream,
                        beast::flat_buffer buffer, connection_ticket ticket,
                        bool tls_required = false);

// Takes over an accepted WebSocket upgrade (websocket_session.cpp): registers
// the session in ctx.sessions and answers the handshake.
// `id`: who connected (router::authenticate_upgrade). `received`: bytes that
// arrived after the upgrade request (the client's first frames).
template <class Stream>
void start_websocket_session(server_context& ctx, const io_lane& lane, Stream stream,
                             http::request<http::string_body> req, ws_identity id,
                             connection_ticket ticket, std::string received);

// How often the server's ticker calls session_base::tick (server.cpp): a
// quarter of the shortest WebSocket deadline (ping interval, pong timeout,
// stalled write timeout), between 5 ms and 1 s.
std::chrono::steady_clock::duration session_tick_period(const server_options& options);

}  // namespace derive::web
