#pragma once
// The HTTP routes of protocol.md, without Beast: a request goes in as plain
// strings, a reply comes out through a callback. The HTTP session (Beast)
// reads requests and writes replies; the WebSocket session reuses the reads.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <derive/runtime.hpp>
#include <derive/web/server.hpp>
#include "web/limits.hpp"
#include "web/access_rules.hpp"

namespace derive::web {

class metrics;

struct http_request {
  std::string method;  // as sent ("GET")
  std::string target;  // as sent ("/v1/views/docs/a%2Fb?after=3")
  std::optional<std::string> content_type;
  std::optional<std::string> idempotency_key;
  std::optional<std::string> authorization;  // the Authorization header
  std::string body;
  std::string remote_address;  // the client's IP address
};

// The parts of a request known before its body is read.
struct request_head {
  std::string_view method;
  std::string_view target;
  bool chunked = false;
  std::optional<uint64_t> content_length;
  std::optional<std::string_view> host;    // the Host header
  std::optional<std::string_view> origin;  // the Origin header
};

struct http_reply {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string file;    // when set: the body is this file (static files)
  bool close = false;  // close the connection after this reply
};

// Runs a function on the session's strand later (never, once the session or
// the server is gone). Callable from any thread.
using post_fn = std::function<void(std::function<void()>)>;
// Delivers the reply. The router calls it on the session's strand: either
// before handle() returns or from a function run through post_fn.
using reply_fn = std::function<void(http_reply)>;

// A reply with the error body of `st` and the status from the errc table.
http_reply error_reply(const status& st);
http_reply error_reply(unsigned status, std::string_view code, std::string_view message);

// One key of a view, read from one snapshot. Errors: unknown_view, io_error.
struct key_read {
  std::optional<std::string> value;  // compact JSON; nullopt: no value
  uint64_t offset = 0;
};
result<key_read> read_key(const runtime& rt, const std::string& view, std::string_view key);

// True when the raw request header (the bytes up to the blank line) has an
// Idempotency-Key field whose value holds a control character (other than a
// tab). HTTP parsers refuse such a header before the key can be checked; the
// session then answers 400 invalid_idempotency_key instead of bad_request.
bool raw_idempotency_key_is_malformed(std::string_view header);

// Whether a WebSocket upgrade with this Origin may proceed (docs/protocol.md,
// "Origin check"). No Origin: allowed. `allowed` empty: the server's own
// origin (the Host header) and localhost / 127.0.0.1 / [::1] on any port.
bool origin_allowed(std::string_view origin, std::string_view host,
                    const std::vector<std::string>& allowed);

// Whether a request with this Host header is served (against DNS rebinding;
// docs/security.md). `allowed` empty: localhost, 127.0.0.1, [::1] and
// `bound_address` (unless it is 0.0.0.0 or ::), any port; "*" allows all.
bool host_allowed(std::string_view host, const std::vector<std::string>& allowed,
                  std::string_view bound_address);

// The reply for a refusal: 401 unauthorized with WWW-Authenticate: Bearer
// (error="invalid_token" when a token was sent), or 403 forbidden.
http_reply denial_reply(const denial& d, bool token_sent);

// Who opens a WebSocket connection, and the subprotocol to answer with.
struct ws_identity {
  principal who;
  std::optional<std::string> protocol;  // Sec-WebSocket-Protocol of the reply
};

class router {
 public:
  // `rt`, `options`, `stats` and `auth` must outlive the router. `auth` is
  // null while authentication is off (and is set before the server starts).
  router(runtime& rt, const server_options& options, metrics& stats,
         const std::shared_ptr<const authorizer>& auth);

  // Checks what can be checked before the body is read: 421 for a Host not
  // allowed, 403 for a foreign Origin on a method that may write, 411 for a
  // chunked request or a POST without Content-Length, 413 for a body over
  // the limit.
  // A reply returned here closes the connection (the body is not read).
  std::optional<http_reply> check_head(const request_head& head) const;

  // Admission of a WebSocket upgrade: nullopt to accept, else the reply
  // (404 for another path, 403 for a foreign Origin).
  std::optional<http_reply> check_upgrade(std::string_view target,
                                          std::optional<std::string_view> origin,
                                          std::string_view host) const;

  // The identity of a WebSocket upgrade (docs/protocol.md, "Tokens"): the
  // token of the Authorization header or of a "derive.token.<jwt>" entry of
  // Sec-WebSocket-Protocol; none: anonymous. A token that does not verify is
  // answered 401 (no upgrade).
  std::variant<ws_identity, http_reply> authenticate_upgrade(
      std::optional<std::string_view> authorization,
      std::optional<std::string_view> protocols) const;

  // Handles one request. `reply` runs exactly once on the session's strand,
  // unless the session or the server is gone first. HEAD is answered as GET
  // (the session leaves out the body).
  void handle(http_request req, reply_fn reply, post_fn post);

  const std::string& client_dir() const { return client_dir_; }
  // The append limits of every client (HTTP and WebSocket appends).
  // Shared: an append's completion may run after the server is gone.
  const std::shared_ptr<append_limits>& limits() const { return limits_; }

 private:
  void append(http_request& req, const principal& who, reply_fn reply, post_fn post);
  void read_route(std::string_view path, std::string_view query, const principal& who,
                  reply_fn reply, post_fn post);
  void forget_route(const http_request& req, std::string_view path, reply_fn reply,
                    post_fn post);
  http_reply read_events(std::string_view query) const;
  http_reply list_views() const;
  http_reply health() const;
  http_reply metrics_text() const;
  http_reply key_reply(const std::string& view, const std::string& key) const;
  http_reply range_reply(const std::string& view, const std::string& prefix,
                         const std::string& start, uint64_t limit) const;
  http_reply query_reply(const std::string& view, const std::string& name,
                         const query_params& params) const;
  http_reply static_reply(const std::string& root, std::string_view path) const;
  // Runs `read` now, or once the view reached `after` (protocol.md, "after=").
  void after_then(const std::string& view, std::optional<uint64_t> after,
                  std::chrono::milliseconds timeout, reply_fn reply, post_fn post,
                  std::function<http_reply()> read);

  runtime& rt_;
  const server_options& options_;
  metrics& stats_;
  const std::shared_ptr<const authorizer>& auth_;
  std::string client_dir_;
  std::shared_ptr<append_limits> limits_;
};

}  // namespace derive::web
