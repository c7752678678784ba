#include "web/tls.hpp"

namespace derive::web {

namespace ssl = boost::asio::ssl;

status tls_store::load(const std::string& cert_file, const std::string& key_file) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                       ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                   ec);
  auto fail = [&](const std::string& what) {
    return status{errc::io_error, "cannot " + what + ": " + ec.message()};
  };
  if (ec) return fail("set the TLS options");
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) return fail("read the TLS certificate chain " + cert_file);
  ctx->use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) return fail("read the TLS private key " + key_file);
  if (::SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return status{errc::io_error, "the TLS private key " + key_file +
                                      " does not match the certificate " + cert_file};
  }
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::move(ctx);
  return {};
}

std::shared_ptr<ssl::context> tls_store::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

}  // namespace derive::web
