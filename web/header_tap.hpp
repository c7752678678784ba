#pragma once
// Internal to web/ (Beast side, include only from http_session.cpp): a
// DynamicBuffer over the session's flat_buffer that copies every byte the
// HTTP parser consumes into a string. Used for reading a request header, so
// that the header can be checked as received (web/framing.hpp) after Beast
// has parsed it, and so that the bytes after it stay in the flat_buffer.

#include <algorithm>
#include <string>

#include <boost/beast/core/flat_buffer.hpp>

namespace derive::web {

class header_tap {
 public:
  using const_buffers_type = boost::beast::flat_buffer::const_buffers_type;
  using mutable_buffers_type = boost::beast::flat_buffer::mutable_buffers_type;

  header_tap(boost::beast::flat_buffer& buffer, std::string& consumed)
      : buffer_(buffer), consumed_(consumed) {}

  std::size_t size() const { return buffer_.size(); }
  std::size_t max_size() const { return buffer_.max_size(); }
  std::size_t capacity() const { return buffer_.capacity(); }
  const_buffers_type data() const { return buffer_.data(); }
  mutable_buffers_type prepare(std::size_t n) { return buffer_.prepare(n); }
  void commit(std::size_t n) { buffer_.commit(n); }
  void consume(std::size_t n) {
    auto d = buffer_.data();
    consumed_.append(static_cast<const char*>(d.data()), std::min(n, d.size()));
    buffer_.consume(n);
  }

 private:
  boost::beast::flat_buffer& buffer_;
  std::string& consumed_;
};

}  // namespace derive::web
