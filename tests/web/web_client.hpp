#pragma once
// A small HTTP/1.1 and WebSocket client for the web tests (Beast inside,
// compiled once in web_client.cpp; no Beast types here). Every call has a
// deadline, so a misbehaving server fails a test instead of hanging it.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace derive::webtest {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct http_response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;

  json body_json() const;  // null when the body is not JSON
  // The value of a header ("" when absent); `name` in any case.
  std::string header(const std::string& name) const;
  bool has_header(const std::string& name) const;
};

struct http_request_spec {
  std::string method = "GET";
  std::string target = "/";
  std::string body;
  std::map<std::string, std::string> headers;
};

// One keep-alive connection to 127.0.0.1:port.
class http_connection {
 public:
  explicit http_connection(uint16_t port);
  ~http_connection();
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  // One request; POST bodies get Content-Type: application/json unless
  // `headers` names another. status 0 when the connection failed.
  http_response request(const http_request_spec& spec);
  http_response get(const std::string& target);
  http_response post(const std::string& target, const std::string& body,
                     std::map<std::string, std::string> headers = {});
  // Writes every request in one write, then reads the responses in order.
  std::vector<http_response> pipeline(const std::vector<http_request_spec>& specs);
  // Writes `bytes` as they are and reads one response; nullopt when the
  // server closed the connection without one.
  std::optional<http_response> raw(const std::string& bytes);
  // Writes `bytes` as they are, reading nothing.
  bool write(const std::string& bytes);
  // Reads exactly `n` bytes (after whatever raw() left unread); nullopt on
  // EOF or timeout.
  std::optional<std::string> read_bytes(size_t n, std::chrono::milliseconds timeout = 5s);
  // True when the server has closed the connection (EOF within `timeout`).
  bool closed_by_peer(std::chrono::milliseconds timeout = 2s);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// One request on a fresh connection.
http_response http_get(uint16_t port, const std::string& target);
http_response http_post(uint16_t port, const std::string& target, const std::string& body,
                        std::map<std::string, std::string> headers = {});

struct ws_close_info {
  int code = 0;  // 0: the TCP connection ended without a close frame
  std::string reason;
};

// A WebSocket connection to ws://127.0.0.1:port/v1/ws.
class ws_connection {
 public:
  // Connects and performs the handshake. `receive_buffer` > 0 sets SO_RCVBUF
  // before connecting (to make a client that stops reading fill up quickly).
  explicit ws_connection(uint16_t port, std::map<std::string, std::string> headers = {},
                         std::string path = "/v1/ws", int receive_buffer = 0);
  ~ws_connection();
  ws_connection(const ws_connection&) = delete;
  ws_connection& operator=(const ws_connection&) = delete;

  // 101 when the upgrade succeeded, else the HTTP status of the refusal.
  int handshake_status() const;
  bool is_open() const;

  void send(const json& msg);
  void send_text(const std::string& text);
  void send_binary(const std::string& bytes);

  // The next message, parsed; nullopt on timeout or when the connection
  // closed (then closed() says how). A read that timed out stays pending and
  // completes in a later call, so no message is lost.
  std::optional<json> read(std::chrono::milliseconds timeout = 5s);
  std::optional<std::string> read_text(std::chrono::milliseconds timeout = 5s);
  // Reads (and discards messages) until the server closes.
  std::optional<ws_close_info> wait_close(std::chrono::milliseconds timeout = 5s);
  std::optional<ws_close_info> closed() const;

  void close();  // a normal closing handshake
  void kill();   // drops the TCP connection without a close frame

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// --- TLS ---------------------------------------------------------------------

// Writes a self-signed certificate (EC P-256, SAN localhost and 127.0.0.1,
// subject CN `common_name`) and its key as PEM files. Made with libssl at
// test time. Returns false when a file cannot be written.
bool make_self_signed_cert(const std::string& cert_path, const std::string& key_path,
                           const std::string& common_name);

struct https_result {
  http_response response;        // status 0: no TLS connection or no answer
  std::string peer_common_name;  // CN of the certificate the server presented
};
// One request over TLS to 127.0.0.1:port on a fresh connection (the server's
// certificate is not verified; its CN is returned).
https_result https_request(uint16_t port, const http_request_spec& spec);

// Over wss://127.0.0.1:port/v1/ws: sends `msg` and returns the first message
// the server answers (nullopt: no TLS, no upgrade or no answer).
std::optional<json> wss_exchange(uint16_t port, const json& msg);

}  // namespace derive::webtest
