#pragma once
// Internal to web/: the Beast side of the server. Include only from the
// web/*.cpp files that already compile Beast code (listener.cpp,
// http_session.cpp, websocket_session.cpp, server.cpp): every includer pays
// for these headers.

#include <memory>
#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "web/server_context.hpp"

namespace derive::web {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using io_executor = net::io_context::executor_type;

// Runs f(session&) on the session's strand, from any thread (runtime
// callbacks). Does nothing once the session is gone or the server's gate is
// closed. Only a weak reference and an io_context executor (trivially
// destructible) are held, so a callback that outlives the server is harmless.
// Two calls may reach the strand in either order (the hop goes through the
// io_context first): for an ordered stream use one queue drained by one
// posted function at a time (websocket_session's hub_inbox).
// REQUIRES: Session has executor() returning its strand.
template <class Session, class F>
void post_to_session(const std::weak_ptr<Session>& weak, post_gate& gate, io_executor io, F&& f) {
  gate.run([&] {
    net::post(io, [weak, f = std::forward<F>(f)]() mutable {
      auto s = weak.lock();
      if (!s) return;
      auto ex = s->executor();
      net::dispatch(ex, [s = std::move(s), f = std::move(f)]() mutable { f(*s); });
    });
  });
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
// in ctx.sessions and starts reading requests on the socket's strand.
void start_http_session(server_context& ctx, net::io_context& ioc, tcp::socket socket);

// Takes over an accepted WebSocket upgrade (websocket_session.cpp): registers
// the session in ctx.sessions and answers the handshake.
// `id`: who connected (router::authenticate_upgrade). `received`: bytes that
// arrived after the upgrade request (the client's first frames).
void start_websocket_session(server_context& ctx, net::io_context& ioc, beast::tcp_stream stream,
                             http::request<http::string_body> req, ws_identity id,
                             std::string received);

}  // namespace derive::web
