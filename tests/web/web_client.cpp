// The test client's Beast side (the only test unit that includes Beast; it
// links against derive_beast, which compiles Beast and Asio once).
#include "tests/web/web_client.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <sstream>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

namespace derive::webtest {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using clock = std::chrono::steady_clock;

constexpr auto io_timeout = std::chrono::seconds(15);

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Runs `io` until `done()` or the deadline.
template <class Pred>
bool run_until(net::io_context& io, Pred done, std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  while (!done() && clock::now() < deadline) {
    io.restart();
    io.run_one_until(deadline);
  }
  return done();
}

tcp::endpoint local(uint16_t port) { return {net::ip::make_address("127.0.0.1"), port}; }

http::request<http::string_body> make_request(const http_request_spec& spec) {
  http::request<http::string_body> req;
  req.method_string(spec.method);
  req.target(spec.target);
  req.version(11);
  req.set(http::field::host, "127.0.0.1");
  bool has_type = false;
  for (const auto& [name, value] : spec.headers) {
    req.set(name, value);
    has_type = has_type || lower(name) == "content-type";
  }
  if (!spec.body.empty() || spec.method == "POST") {
    if (!has_type) req.set(http::field::content_type, "application/json");
    req.body() = spec.body;
    req.prepare_payload();
  }
  return req;
}

http_response to_response(http::response<http::string_body>& res) {
  http_response out;
  out.status = res.result_int();
  for (const auto& f : res) {
    out.headers[lower(std::string(f.name_string()))] = std::string(f.value());
  }
  out.body = std::move(res.body());
  return out;
}

}  // namespace

json http_response::body_json() const {
  auto j = json::parse(body, nullptr, false);
  return j.is_discarded() ? json() : j;
}

std::string http_response::header(const std::string& name) const {
  auto it = headers.find(lower(name));
  return it == headers.end() ? "" : it->second;
}

bool http_response::has_header(const std::string& name) const {
  return headers.count(lower(name)) != 0;
}

// --- HTTP -------------------------------------------------------------------

struct http_connection::impl {
  net::io_context io;
  beast::tcp_stream stream{io};
  beast::flat_buffer buffer;

  explicit impl(uint16_t port) {
    beast::error_code ec;
    stream.socket().connect(local(port), ec);
  }

  bool write(const std::string& bytes) {
    bool done = false;
    beast::error_code result;
    stream.expires_after(io_timeout);
    net::async_write(stream, net::buffer(bytes), [&](beast::error_code ec, size_t) {
      result = ec;
      done = true;
    });
    run_until(io, [&] { return done; }, io_timeout + 1s);
    return done && !result;
  }

  std::optional<http_response> read_response(bool head) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    parser.header_limit(1024 * 1024);
    if (head) parser.skip(true);
    bool done = false;
    beast::error_code result;
    stream.expires_after(io_timeout);
    http::async_read(stream, buffer, parser, [&](beast::error_code ec, size_t) {
      result = ec;
      done = true;
    });
    run_until(io, [&] { return done; }, io_timeout + 1s);
    if (!done || result) return std::nullopt;
    return to_response(parser.get());
  }
};

http_connection::http_connection(uint16_t port) : impl_(std::make_unique<impl>(port)) {}
http_connection::~http_connection() = default;

http_response http_connection::request(const http_request_spec& spec) {
  auto req = make_request(spec);
  std::ostringstream os;
  os << req;
  if (!impl_->write(os.str())) return {};
  return impl_->read_response(spec.method == "HEAD").value_or(http_response{});
}

http_response http_connection::get(const std::string& target) {
  return request({"GET", target, "", {}});
}

http_response http_connection::post(const std::string& target, const std::string& body,
                                    std::map<std::string, std::string> headers) {
  return request({"POST", target, body, std::move(headers)});
}

std::vector<http_response> http_connection::pipeline(const std::vector<http_request_spec>& specs) {
  std::string all;
  for (const auto& spec : specs) {
    std::ostringstream os;
    os << make_request(spec);
    all += os.str();
  }
  std::vector<http_response> out;
  if (!impl_->write(all)) return out;
  for (const auto& spec : specs) {
    auto r = impl_->read_response(spec.method == "HEAD");
    if (!r) break;
    out.push_back(std::move(*r));
  }
  return out;
}

std::optional<http_response> http_connection::raw(const std::string& bytes) {
  if (!impl_->write(bytes)) return std::nullopt;
  return impl_->read_response(false);
}

bool http_connection::write(const std::string& bytes) { return impl_->write(bytes); }

std::optional<std::string> http_connection::read_bytes(size_t n,
                                                       std::chrono::milliseconds timeout) {
  auto& buffer = impl_->buffer;
  if (buffer.size() < n) {
    bool done = false;
    beast::error_code result;
    size_t missing = n - buffer.size();
    impl_->stream.expires_after(timeout);
    net::async_read(impl_->stream, buffer.prepare(missing), [&](beast::error_code ec, size_t got) {
      result = ec;
      buffer.commit(got);
      done = true;
    });
    run_until(impl_->io, [&] { return done; }, timeout + 1s);
    if (!done || result) return std::nullopt;
  }
  std::string out(static_cast<const char*>(buffer.data().data()), n);
  buffer.consume(n);
  return out;
}

bool http_connection::closed_by_peer(std::chrono::milliseconds timeout) {
  char c;
  bool done = false;
  beast::error_code result;
  impl_->stream.expires_after(timeout);
  impl_->stream.async_read_some(net::buffer(&c, 1), [&](beast::error_code ec, size_t) {
    result = ec;
    done = true;
  });
  run_until(impl_->io, [&] { return done; }, timeout + 1s);
  return done && result && result != beast::error::timeout;
}

http_response http_get(uint16_t port, const std::string& target) {
  http_connection c(port);
  return c.get(target);
}

http_response http_post(uint16_t port, const std::string& target, const std::string& body,
                        std::map<std::string, std::string> headers) {
  http_connection c(port);
  return c.post(target, body, std::move(headers));
}

// --- WebSocket ----------------------------------------------------------------

struct ws_connection::impl {
  net::io_context io;
  websocket::stream<beast::tcp_stream> ws{io};
  int status = 0;
  beast::flat_buffer buffer;
  bool read_pending = false;
  bool read_done = false;
  beast::error_code read_ec;
  std::optional<ws_close_info> closed;

  void connect(uint16_t port, const std::map<std::string, std::string>& headers,
               const std::string& path, int receive_buffer) {
    auto& sock = beast::get_lowest_layer(ws).socket();
    beast::error_code ec;
    sock.open(tcp::v4(), ec);
    if (receive_buffer > 0) sock.set_option(net::socket_base::receive_buffer_size(receive_buffer), ec);
    sock.connect(local(port), ec);
    if (ec) return;
    ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
    ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
      for (const auto& [name, value] : headers) req.set(name, value);
    }));
    ws.read_message_max(256 * 1024 * 1024);
    websocket::response_type res;
    bool done = false;
    beast::error_code result;
    ws.async_handshake(res, "127.0.0.1:" + std::to_string(port), path,
                       [&](beast::error_code e) {
                         result = e;
                         done = true;
                       });
    run_until(io, [&] { return done; }, io_timeout);
    status = done ? static_cast<int>(res.result_int()) : 0;
    if (done && !result) status = 101;
  }

  bool write(const std::string& bytes, bool binary) {
    ws.binary(binary);
    bool done = false;
    beast::error_code result;
    ws.async_write(net::buffer(bytes), [&](beast::error_code e, size_t) {
      result = e;
      done = true;
    });
    run_until(io, [&] { return done; }, io_timeout);
    ws.text(true);
    return done && !result;
  }

  std::optional<std::string> read(std::chrono::milliseconds timeout) {
    if (closed || status != 101) return std::nullopt;
    if (!read_pending) {
      read_pending = true;
      read_done = false;
      ws.async_read(buffer, [this](beast::error_code e, size_t) {
        read_ec = e;
        read_done = true;
      });
    }
    run_until(io, [&] { return read_done; }, timeout);
    if (!read_done) return std::nullopt;
    read_pending = false;
    if (read_ec) {
      ws_close_info info;
      if (read_ec == websocket::error::closed) {
        info.code = ws.reason().code;
        info.reason = std::string(ws.reason().reason.c_str());
      }
      closed = info;
      return std::nullopt;
    }
    std::string text = beast::buffers_to_string(buffer.data());
    buffer.consume(buffer.size());
    return text;
  }
};

ws_connection::ws_connection(uint16_t port, std::map<std::string, std::string> headers,
                             std::string path, int receive_buffer)
    : impl_(std::make_unique<impl>()) {
  impl_->connect(port, headers, path, receive_buffer);
}

ws_connection::~ws_connection() { kill(); }

int ws_connection::handshake_status() const { return impl_->status; }
bool ws_connection::is_open() const { return impl_->status == 101 && !impl_->closed; }

void ws_connection::send(const json& msg) { impl_->write(msg.dump(), false); }
void ws_connection::send_text(const std::string& text) { impl_->write(text, false); }
void ws_connection::send_binary(const std::string& bytes) { impl_->write(bytes, true); }

std::optional<json> ws_connection::read(std::chrono::milliseconds timeout) {
  auto text = impl_->read(timeout);
  if (!text) return std::nullopt;
  auto j = json::parse(*text, nullptr, false);
  if (j.is_discarded()) return json("<not json: " + *text + ">");
  return j;
}

std::optional<std::string> ws_connection::read_text(std::chrono::milliseconds timeout) {
  return impl_->read(timeout);
}

std::optional<ws_close_info> ws_connection::wait_close(std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  while (!impl_->closed && clock::now() < deadline) {
    impl_->read(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()));
  }
  return impl_->closed;
}

std::optional<ws_close_info> ws_connection::closed() const { return impl_->closed; }

void ws_connection::close() {
  if (!is_open()) return;
  bool done = false;
  impl_->ws.async_close(websocket::close_code::normal, [&](beast::error_code) { done = true; });
  run_until(impl_->io, [&] { return done; }, 2s);
  impl_->closed = ws_close_info{1000, ""};
}

void ws_connection::kill() {
  beast::error_code ec;
  beast::get_lowest_layer(impl_->ws).socket().close(ec);
  if (impl_->read_pending || impl_->status == 101) {
    // Let the aborted operations finish before the stream is destroyed.
    impl_->io.restart();
    impl_->io.poll();
  }
  if (!impl_->closed) impl_->closed = ws_close_info{0, "killed"};
}

// --- TLS ---------------------------------------------------------------------

bool make_self_signed_cert(const std::string& cert_path, const std::string& key_path,
                           const std::string& common_name) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  if (!key || !cert) return false;
  X509_set_version(cert.get(), 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7 * 86400);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  if (X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name,
                                                "DNS:localhost,IP:127.0.0.1")) {
    X509_add_ext(cert.get(), san, -1);
    X509_EXTENSION_free(san);
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return false;
  FILE* cf = std::fopen(cert_path.c_str(), "w");
  if (!cf) return false;
  bool ok = PEM_write_X509(cf, cert.get()) == 1;
  std::fclose(cf);
  FILE* kf = std::fopen(key_path.c_str(), "w");
  if (!kf) return false;
  ok = PEM_write_PrivateKey(kf, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1 && ok;
  std::fclose(kf);
  return ok;
}

namespace {

// A TLS connection to 127.0.0.1:port, handshake done (nullptr on failure).
struct tls_client {
  net::io_context io;
  net::ssl::context ssl{net::ssl::context::tls_client};
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream;
  std::string peer_common_name;

  bool connect(uint16_t port) {
    ssl.set_verify_mode(net::ssl::verify_none);
    stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(io, ssl);
    beast::error_code ec;
    beast::get_lowest_layer(*stream).socket().connect(local(port), ec);
    if (ec) return false;
    bool done = false;
    beast::get_lowest_layer(*stream).expires_after(io_timeout);
    stream->async_handshake(net::ssl::stream_base::client, [&](beast::error_code e) {
      ec = e;
      done = true;
    });
    run_until(io, [&] { return done; }, io_timeout + 1s);
    if (!done || ec) return false;
    if (X509* peer = SSL_get1_peer_certificate(stream->native_handle())) {
      char cn[256] = {0};
      X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
      peer_common_name = cn;
      X509_free(peer);
    }
    return true;
  }
};

}  // namespace

https_result https_request(uint16_t port, const http_request_spec& spec) {
  https_result out;
  tls_client c;
  if (!c.connect(port)) return out;
  out.peer_common_name = c.peer_common_name;
  auto req = make_request(spec);
  bool done = false;
  beast::error_code ec;
  beast::get_lowest_layer(*c.stream).expires_after(io_timeout);
  http::async_write(*c.stream, req, [&](beast::error_code e, size_t) {
    ec = e;
    done = true;
  });
  run_until(c.io, [&] { return done; }, io_timeout + 1s);
  if (!done || ec) return out;
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  done = false;
  http::async_read(*c.stream, buffer, res, [&](beast::error_code e, size_t) {
    ec = e;
    done = true;
  });
  run_until(c.io, [&] { return done; }, io_timeout + 1s);
  if (done && !ec) out.response = to_response(res);
  return out;
}

std::optional<json> wss_exchange(uint16_t port, const json& msg) {
  tls_client c;
  if (!c.connect(port)) return std::nullopt;
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(std::move(*c.stream));
  beast::get_lowest_layer(ws).expires_never();
  ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  bool done = false;
  beast::error_code ec;
  ws.async_handshake("127.0.0.1:" + std::to_string(port), "/v1/ws", [&](beast::error_code e) {
    ec = e;
    done = true;
  });
  run_until(c.io, [&] { return done; }, io_timeout);
  if (!done || ec) return std::nullopt;
  std::string text = msg.dump();
  done = false;
  ws.async_write(net::buffer(text), [&](beast::error_code e, size_t) {
    ec = e;
    done = true;
  });
  run_until(c.io, [&] { return done; }, io_timeout);
  if (!done || ec) return std::nullopt;
  beast::flat_buffer buffer;
  done = false;
  ws.async_read(buffer, [&](beast::error_code e, size_t) {
    ec = e;
    done = true;
  });
  run_until(c.io, [&] { return done; }, io_timeout);
  if (!done || ec) return std::nullopt;
  auto j = json::parse(beast::buffers_to_string(buffer.data()), nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

}  // namespace derive::webtest
