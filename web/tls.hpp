#pragma once
// Internal to web/ (Asio SSL): the server's TLS context, replaced as a whole
// by a reload. Include only from web/*.cpp files that compile Beast code.

#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include <derive/status.hpp>

namespace derive::web {

class tls_store {
 public:
  // Reads the PEM certificate chain and private key and makes them the
  // context of new connections. On an error the current context stays.
  // Errors: io_error naming the file and OpenSSL's reason. Thread-safe.
  status load(const std::string& cert_file, const std::string& key_file);
  // The context for a new connection (null before a successful load). A
  // connection's SSL object holds a reference to its context (OpenSSL counts
  // them), so a reload never pulls it from under an open connection.
  std::shared_ptr<boost::asio::ssl::context> current() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<boost::asio::ssl::context> current_;
};

}  // namespace derive::web
