#pragma once
// Internal to web/ (Beast side, include only from websocket_session.cpp): a
// stream that first returns bytes already received, then reads from the
// stream below. A client may send its first WebSocket frames in the same
// segment as the upgrade request; the HTTP session's buffer then holds them
// after the request, and the WebSocket stream reads them from here.

#include <string>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/websocket/teardown.hpp>

namespace derive::web {

template <class NextLayer>
class prefixed_stream {
 public:
  using executor_type = typename NextLayer::executor_type;

  prefixed_stream(NextLayer&& next, std::string received)
      : next_(std::move(next)), received_(std::move(received)) {}

  executor_type get_executor() noexcept { return next_.get_executor(); }
  NextLayer& next_layer() noexcept { return next_; }
  const NextLayer& next_layer() const noexcept { return next_; }

  // The received bytes first (completing through a post, like any read),
  // then the next layer's.
  template <class MutableBufferSequence, class ReadHandler>
  auto async_read_some(const MutableBufferSequence& buffers, ReadHandler&& handler) {
    return boost::asio::async_initiate<ReadHandler, void(boost::beast::error_code, std::size_t)>(
        [this](auto h, const MutableBufferSequence& b) {
          if (received_.empty()) {
            next_.async_read_some(b, std::move(h));
            return;
          }
          std::size_t n = boost::asio::buffer_copy(b, boost::asio::buffer(received_));
          received_.erase(0, n);
          if (received_.empty()) std::string().swap(received_);
          boost::asio::post(get_executor(), boost::beast::bind_front_handler(
                                                std::move(h), boost::beast::error_code{}, n));
        },
        handler, buffers);
  }

  template <class ConstBufferSequence, class WriteHandler>
  auto async_write_some(const ConstBufferSequence& buffers, WriteHandler&& handler) {
    return next_.async_write_some(buffers, std::forward<WriteHandler>(handler));
  }

 private:
  NextLayer next_;
  std::string received_;
};

// The WebSocket closing handshake tears down the next layer.
template <class NextLayer>
void teardown(boost::beast::role_type role, prefixed_stream<NextLayer>& s,
              boost::beast::error_code& ec) {
  using boost::beast::websocket::teardown;
  teardown(role, s.next_layer(), ec);
}

template <class NextLayer, class TeardownHandler>
void async_teardown(boost::beast::role_type role, prefixed_stream<NextLayer>& s,
                    TeardownHandler&& handler) {
  using boost::beast::websocket::async_teardown;
  async_teardown(role, s.next_layer(), std::forward<TeardownHandler>(handler));
}

}  // namespace derive::web
