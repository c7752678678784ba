#include "tools/derive/http_client.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace derive::tool {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A connected socket to `where`, or -1 with `why`.
int connect_to(const endpoint& where, std::chrono::seconds timeout, std::string& why) {
  std::string host = where.host;
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), where.port.c_str(), &hints, &found); rc != 0) {
    why = "cannot resolve " + host + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (auto* a = found; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    // Connecting, the TLS handshake and sending wait at most `timeout`, or
    // 30 s when it is 0 (the answer then waits without a limit: see
    // connection::answer_without_limit).
    timeval tv{static_cast<time_t>(timeout.count() > 0 ? timeout.count() : 30), 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      why = "cannot connect to " + where.host + ":" + where.port + ": " + std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  return fd;
}

std::string bare_host(const endpoint& where) {
  const std::string& h = where.host;
  return h.size() > 2 && h.front() == '[' ? h.substr(1, h.size() - 2) : h;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return errno ? std::strerror(errno) : "the connection was closed";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// One connection to the server: a socket, and TLS over it for https://.
class connection {
 public:
  ~connection() {
    ssl_.reset();
    if (fd_ >= 0) close(fd_);
  }

  // False with `why` when no connection (or no verified TLS session) is made.
  bool open(const endpoint& where, std::chrono::seconds timeout, const std::string& ca_file,
            std::string& why) {
    fd_ = connect_to(where, timeout, why);
    if (fd_ < 0) return false;
    return !where.tls || start_tls(where, ca_file, why);
  }

  // Reads wait for the answer without a time limit from now on.
  void answer_without_limit() {
    timeval none{0, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
  }

  bool send_all(const std::string& data) {
    for (size_t sent = 0; sent < data.size();) {
      const size_t left = data.size() - sent;
      ssize_t n = ssl_ ? SSL_write(ssl_.get(), data.data() + sent, static_cast<int>(left))
                       : send(fd_, data.data() + sent, left, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // > 0: bytes read; 0: the server closed; < 0: an error (a timeout too).
  ssize_t receive(char* buf, size_t size) {
    if (!ssl_) return recv(fd_, buf, size, 0);
    int n = SSL_read(ssl_.get(), buf, static_cast<int>(size));
    if (n > 0) return n;
    return SSL_get_error(ssl_.get(), n) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
  }

 private:
  bool start_tls(const endpoint& where, const std::string& ca_file, std::string& why) {
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    if (!ctx_) return (why = "cannot set up TLS: " + ssl_error(), false);
    SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_2_VERSION);
    SSL_CTX_set_options(ctx_.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);  // Content-Length tells
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    if (ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx_.get()) != 1
                        : SSL_CTX_load_verify_locations(ctx_.get(), ca_file.c_str(), nullptr) != 1)
      return (why = "cannot read the CA certificates " +
                    (ca_file.empty() ? std::string("of the system") : "in " + ca_file) + ": " +
                    ssl_error(),
              false);
    ssl_.reset(SSL_new(ctx_.get()));
    if (!ssl_ || SSL_set_fd(ssl_.get(), fd_) != 1) return (why = "cannot set up TLS", false);
    const std::string host = bare_host(where);
    if (is_ip_literal(host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl_.get(), host.c_str());
      SSL_set1_host(ssl_.get(), host.c_str());
    }
    if (SSL_connect(ssl_.get()) == 1) return true;
    const long verified = SSL_get_verify_result(ssl_.get());
    why = "no TLS session with " + where.host + ":" + where.port + ": " +
          (verified != X509_V_OK
               ? std::string("its certificate is not trusted (") +
                     X509_verify_cert_error_string(verified) +
                     "); give the CA that signed it with --cacert FILE"
               : ssl_error());
    return false;
  }

  struct ctx_free {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
  };
  struct ssl_free {
    void operator()(SSL* s) const { SSL_free(s); }
  };
  int fd_ = -1;
  std::unique_ptr<SSL_CTX, ctx_free> ctx_;
  std::unique_ptr<SSL, ssl_free> ssl_;
};

// Decodes a chunked body; false when it is cut.
bool dechunk(const std::string& in, std::string& out) {
  size_t at = 0;
  for (;;) {
    size_t eol = in.find("\r\n", at);
    if (eol == std::string::npos) return false;
    size_t size = std::strtoul(in.substr(at, eol - at).c_str(), nullptr, 16);
    at = eol + 2;
    if (size == 0) return true;
    if (at + size > in.size()) return false;
    out.append(in, at, size);
    at += size + 2;
  }
}

}  // namespace

std::optional<endpoint> parse_url(const std::string& url, std::string& why) {
  endpoint e;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
    e.tls = true;
  } else {
    why = "the URL must start with http:// or https://, not '" + url + "'";
    return std::nullopt;
  }
  rest = rest.substr(0, rest.find('/'));
  size_t colon = rest.rfind(':');
  size_t bracket = rest.rfind(']');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    e.host = rest.substr(0, colon);
    e.port = rest.substr(colon + 1);
  } else {
    e.host = rest;
    e.port = e.tls ? "443" : "80";
  }
  if (e.host.empty() || e.port.empty()) {
    why = "the URL '" + url + "' names no host or port";
    return std::nullopt;
  }
  return e;
}

http_result http_client::request(const std::string& method, const std::string& target,
                                 const std::string& body) const {
  http_result out;
  connection conn;
  if (!conn.open(where_, timeout_, ca_file_, out.error)) return out;
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + where_.host + ":" +
                    where_.port + "\r\nConnection: close\r\nAccept: application/json\r\n";
  if (!token_.empty()) req += "Authorization: Bearer " + token_ + "\r\n";
  if (method == "POST") {
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n";
  }
  req += "\r\n" + body;
  if (!conn.send_all(req)) {
    out.error = "cannot send the request: " + std::string(std::strerror(errno));
    return out;
  }
  if (timeout_.count() == 0) conn.answer_without_limit();
  std::string raw;
  char buf[65536];
  std::optional<size_t> expected;  // the whole response's size, once known
  for (;;) {
    ssize_t n = conn.receive(buf, sizeof buf);
    if (n < 0) {
      out.timed_out = errno == EAGAIN || errno == EWOULDBLOCK;
      out.error = out.timed_out ? "no answer from the server within " +
                                      std::to_string(timeout_.count()) + " s"
                                : "no answer from the server: " +
                                      std::string(errno ? std::strerror(errno)
                                                        : "the connection failed");
      return out;
    }
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
    if (!expected) {
      size_t end = raw.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::string head = lower(raw.substr(0, end));
        size_t cl = head.find("\r\ncontent-length:");
        if (cl != std::string::npos)
          expected = end + 4 + std::strtoull(head.c_str() + cl + 17, nullptr, 10);
      }
    }
    if (expected && raw.size() >= *expected) break;
  }
  size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) {
    out.error = "the server's answer is not HTTP";
    return out;
  }
  out.connected = true;
  out.status = static_cast<unsigned>(std::strtoul(raw.c_str() + 9, nullptr, 10));
  std::string head = lower(raw.substr(0, end));
  std::string payload = raw.substr(end + 4);
  if (head.find("transfer-encoding: chunked") != std::string::npos) {
    if (!dechunk(payload, out.body)) out.body = payload;
  } else {
    out.body = std::move(payload);
  }
  return out;
}

std::string encode_segment(const std::string& s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

}  // namespace derive::tool
