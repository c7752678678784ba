#pragma once
// A small blocking HTTP/1.1 client for the `derive` tool: one request per
// connection (Connection: close), over TCP (http:// URLs) or TLS (https://:
// OpenSSL, the server's certificate verified against the system's CAs or a
// given CA file, and its name against the URL's host), a read timeout.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace derive::tool {

struct endpoint {
  std::string host;  // as in the URL ("127.0.0.1", "[::1]", "localhost")
  std::string port = "8080";
  bool tls = false;  // https://
};

// Parses "http://host[:port][/]" or "https://…" (default ports 80 and 443).
// nullopt: not such a URL (the error in `why`).
std::optional<endpoint> parse_url(const std::string& url, std::string& why);

struct http_result {
  bool connected = false;  // false: `error` says why no answer came
  bool timed_out = false;  // the request was sent; no answer came within the timeout
  std::string error;
  unsigned status = 0;
  std::string body;
};

class http_client {
 public:
  // `ca_file`: PEM certificates to trust for https:// (empty: the system's).
  http_client(endpoint where, std::string token, std::chrono::seconds timeout,
              std::string ca_file = "")
      : where_(std::move(where)),
        token_(std::move(token)),
        timeout_(timeout),
        ca_file_(std::move(ca_file)) {}

  http_result request(const std::string& method, const std::string& target,
                      const std::string& body = "") const;
  http_result get(const std::string& target) const { return request("GET", target); }
  http_result post(const std::string& target) const { return request("POST", target); }

  const endpoint& where() const { return where_; }
  // The same client with another timeout (0: the answer may take any time;
  // connecting, the TLS handshake and sending still wait at most 30 s).
  http_client with_timeout(std::chrono::seconds timeout) const {
    http_client c = *this;
    c.timeout_ = timeout;
    return c;
  }

 private:
  endpoint where_;
  std::string token_;
  std::chrono::seconds timeout_;
  std::string ca_file_;
};

// Percent-encodes a path segment (everything but unreserved characters).
std::string encode_segment(const std::string& s);

}  // namespace derive::tool
