#include "tools/derive/http_client.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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
    timeval tv{static_cast<time_t>(timeout.count()), 0};
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

bool send_all(int fd, const std::string& data) {
  for (size_t sent = 0; sent < data.size();) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

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
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) {
    why = "the URL must start with http:// (this tool speaks plain HTTP), not '" + url + "'";
    return std::nullopt;
  }
  std::string rest = url.substr(scheme.size());
  rest = rest.substr(0, rest.find('/'));
  endpoint e;
  size_t colon = rest.rfind(':');
  size_t bracket = rest.rfind(']');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    e.host = rest.substr(0, colon);
    e.port = rest.substr(colon + 1);
  } else {
    e.host = rest;
    e.port = "80";
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
  int fd = connect_to(where_, timeout_, out.error);
  if (fd < 0) return out;
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + where_.host + ":" +
                    where_.port + "\r\nConnection: close\r\nAccept: application/json\r\n";
  if (!token_.empty()) req += "Authorization: Bearer " + token_ + "\r\n";
  if (method == "POST") {
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n";
  }
  req += "\r\n" + body;
  if (!send_all(fd, req)) {
    out.error = "cannot send the request: " + std::string(std::strerror(errno));
    close(fd);
    return out;
  }
  std::string raw;
  char buf[65536];
  std::optional<size_t> expected;  // the whole response's size, once known
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      out.error = "no answer from the server: " + std::string(std::strerror(errno));
      close(fd);
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
  close(fd);
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
