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
#include <optional>
#include <string>
#include <vector>

#include <derive/runtime.hpp>
#include <derive/status.hpp>
#include <derive/web/auth.hpp>

namespace derive::web {

struct server_options {
  std::string address = "127.0.0.1";
  uint16_t port = 8080;  // 0: pick a free port (see port())
  // Asio threads, each with its own io_context (connections are dealt to
  // them in turn, skipping one busy with a handler, and stay on theirs); 0: one per two hardware threads, at
  // least one (the other half for the runtime's threads). On two cores one
  // thread served 1.2-1.5x the reads of two, but request handlers heavy on
  // CPU (an application's queries) get one core per thread
  // (docs/benchmarks.md, "One Asio thread"). One more thread, mostly
  // asleep, accepts connections and runs the WebSocket sessions' timer, so
  // that a busy handler holds up neither.
  unsigned threads = 0;
  // Static files served at "/" (index.html for "/"); empty: none.
  std::string static_dir;
  // The browser client (derive.js) served at /client/derive.js; empty: the
  // source copy (web/client) or the installed one is found automatically.
  std::string client_dir;
  // Origins allowed to open a WebSocket; empty: the server's own origin and
  // http(s)://localhost / 127.0.0.1 / [::1] on any port. "*" allows all.
  // Other origins get 403 (docs/protocol.md, "Origin check").
  // The same list decides whether an HTTP request that may change data
  // (any method but GET, HEAD, OPTIONS) and carries an Origin is accepted.
  std::vector<std::string> allowed_origins;
  // Host header values accepted (against DNS rebinding): host names or IP
  // literals ("[::1]"), any port. Empty: localhost, 127.0.0.1, [::1] and the
  // bound address. "*" allows all. Other hosts get 421 host_not_allowed.
  std::vector<std::string> allowed_hosts;

  // TLS (docs/security.md): PEM files of the certificate chain and of its
  // private key; both empty: no TLS. With TLS the port serves https and wss
  // (a TLS handshake is detected per connection); a plain HTTP request on it
  // is answered 400 tls_required and closed. reload_tls() reads them again.
  std::string tls_cert_file;
  std::string tls_key_file;

  // Open connections at most, in total (kept below the process's file
  // descriptor limit) and per client IP address (0: no per-address limit;
  // behind a proxy every client has the proxy's address). A connection over
  // a limit is answered 503 too_many_connections and closed, unread.
  size_t max_connections = 10000;
  size_t max_connections_per_address = 0;
  // Appends (HTTP and WebSocket) per client: a token bucket of append_rate
  // appends a second holding at most append_burst; 0: no limit. Beyond it:
  // 429 rate_limited with Retry-After.
  double append_rate = 0;
  double append_burst = 100;
  // New idempotency keys per client within idempotency_key_window (0: no
  // limit). Beyond: 429 too_many_idempotency_keys (docs/security.md).
  size_t max_new_idempotency_keys = 10000;
  std::chrono::milliseconds idempotency_key_window{std::chrono::hours(1)};
  // Tokens and access rules (docs/security.md); unset: no checks at all.
  std::optional<auth_options> auth;

  size_t max_header_bytes = 8 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  size_t max_message_bytes = 1024 * 1024;
  size_t max_subscriptions = 1000;  // per connection
  // Per-connection queue of changes not yet written (bytes).
  size_t send_queue_bytes = 4 * 1024 * 1024;
  size_t snapshot_chunk_items = 1000;
  // A snapshot message is closed after the item that makes it pass this size.
  size_t snapshot_chunk_bytes = 256 * 1024;
  // Snapshots are read lazily, a chunk at a time as the connection drains,
  // from one read transaction. A transaction older than this is replaced;
  // when the view moved meanwhile, the snapshot restarts with "reset": true
  // at the newer offset (docs/protocol.md, "Snapshots").
  std::chrono::milliseconds snapshot_max_age{std::chrono::seconds(30)};
  // An HTTP response holds at most this many bytes of items (events, keys),
  // and always at least one item; `next` continues (docs/protocol.md).
  size_t max_response_bytes = 4 * 1024 * 1024;
  // HTTP responses over 64 KiB being written, all connections together
  // (one client address: at most an eighth): a client that stops reading
  // pins its response until the write completes or idle_timeout. A large
  // response that does not fit is answered 503 overloaded (Retry-After: 1)
  // instead, unless nothing else is charged (to it). 0: no budget.
  size_t max_unsent_response_bytes = 256 * 1024 * 1024;
  // Appends and waiting gets one WebSocket connection may have outstanding;
  // beyond it the server stops reading from that connection for a while.
  size_t max_inflight_requests = 256;
  // HTTP: an idle keep-alive connection, reading one request, writing one
  // response. WebSocket: receiving one message once its first byte came.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds ping_interval{std::chrono::seconds(20)};
  std::chrono::milliseconds pong_timeout{std::chrono::seconds(20)};
  // A connection whose writes make no progress this long is closed with 1008.
  std::chrono::milliseconds stalled_write_timeout{std::chrono::seconds(10)};
  // stop(): how long open connections get to finish (answers, close frames)
  // before they are cut.
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(2)};
};

// Serves protocol.md for `rt` on its own Asio threads.
// REQUIRES: `rt` outlives the server. start() and stop() are called from one
// thread (not from a handler); a stopped server may be started again.
class server {
 public:
  server(runtime& rt, server_options options = {});
  ~server();  // stops
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds and starts the Asio threads. Errors: io_error (address in use, ...).
  status start();
  // Closes the listener and every connection (waiting reads get 503, WebSockets
  // a close frame 1001; at most shutdown_timeout), joins the threads.
  // Idempotent.
  void stop();
  uint16_t port() const;
  // The Asio threads that serve connections (options.threads, or the
  // default's choice; the accept thread is not counted); 0 while stopped.
  unsigned threads() const;
  // Reads tls_cert_file and tls_key_file again (for example on SIGHUP); new
  // connections use them, open ones keep theirs. On an error (a file
  // missing, unreadable, or a key that does not match) the old certificate
  // stays in use and the error is returned. Errors: invalid_parameter (TLS is
  // off), io_error. Thread-safe.
  status reload_tls();

 private:
  class impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace derive::web
