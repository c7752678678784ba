#pragma once
// The HTTP and WebSocket server (protocol.md). No Asio or Beast types here:
// they stay in web/'s .cpp files.
//
//   derive::web::server srv(rt, {.port = 8080, .static_dir = "samples/docsearch/www"});
//   if (auto st = srv.start(); !st) { ... }
//   std::cout << "listening on " << srv.port() << "\n";

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/runtime.hpp"
#include "core/status.hpp"

namespace derive::web {

struct server_options {
  std::string address = "127.0.0.1";
  uint16_t port = 8080;  // 0: pick a free port (see port())
  unsigned threads = 2;  // Asio threads
  // Static files served at "/" (index.html for "/"); empty: none.
  std::string static_dir;
  // The browser client (derive.js) served at /client/derive.js; empty: the
  // installed or source copy is found automatically.
  std::string client_dir;
  // Origins allowed to open a WebSocket; empty: the server's own origin and
  // http://localhost / http://127.0.0.1 on any port.
  std::vector<std::string> allowed_origins;

  size_t max_header_bytes = 8 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  size_t max_message_bytes = 1024 * 1024;
  size_t max_subscriptions = 1000;  // per connection
  // Per-connection queue of changes not yet written (bytes).
  size_t send_queue_bytes = 4 * 1024 * 1024;
  size_t snapshot_chunk_items = 1000;
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};     // HTTP keep-alive
  std::chrono::milliseconds ping_interval{std::chrono::seconds(20)};
  std::chrono::milliseconds pong_timeout{std::chrono::seconds(20)};
  // A connection whose writes make no progress this long is closed with 1008.
  std::chrono::milliseconds stalled_write_timeout{std::chrono::seconds(10)};
};

class server {
 public:
  server(runtime& rt, server_options options = {});
  ~server();  // stops
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds and starts the Asio threads. Errors: io_error (address in use, ...).
  status start();
  // Closes the listener and every connection, joins the threads.
  void stop();
  uint16_t port() const;

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace derive::web
