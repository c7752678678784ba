#include <derive/signals.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <stdexcept>

namespace derive {
namespace {

// The write end of the live object's pipe; a signal handler may only write().
std::atomic<int> wake_fd{-1};

extern "C" void on_stop_signal(int sig) {
  int fd = wake_fd.load();
  if (fd >= 0) {
    auto c = static_cast<unsigned char>(sig);
    [[maybe_unused]] auto n = ::write(fd, &c, 1);
  }
}

}  // namespace

struct stop_signals::saved {
  struct sigaction old_int {};
  struct sigaction old_term {};
  struct sigaction old_hup {};
  bool hup = false;
};

stop_signals::stop_signals(bool catch_hangup) {
  if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0)
    throw std::runtime_error("stop_signals: cannot create a pipe");
  int expected = -1;
  if (!wake_fd.compare_exchange_strong(expected, pipe_[1])) {
    ::close(pipe_[0]);
    ::close(pipe_[1]);
    throw std::logic_error("stop_signals: only one object may live at a time");
  }
  saved_ = new saved;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, &saved_->old_int);
  sigaction(SIGTERM, &action, &saved_->old_term);
  if (catch_hangup) {
    saved_->hup = true;
    sigaction(SIGHUP, &action, &saved_->old_hup);
  }
}

stop_signals::~stop_signals() {
  sigaction(SIGINT, &saved_->old_int, nullptr);
  sigaction(SIGTERM, &saved_->old_term, nullptr);
  if (saved_->hup) sigaction(SIGHUP, &saved_->old_hup, nullptr);
  wake_fd = -1;
  delete saved_;
  ::close(pipe_[0]);
  ::close(pipe_[1]);
}

int stop_signals::wait() {
  for (;;) {
    pollfd p{pipe_[0], POLLIN, 0};
    int n = ::poll(&p, 1, -1);
    if (n < 0 && errno != EINTR) return 0;
    unsigned char c = 0;
    if (n > 0 && ::read(pipe_[0], &c, 1) == 1) return c;
  }
}

void stop_signals::notify() {
  unsigned char c = 0;
  [[maybe_unused]] auto n = ::write(pipe_[1], &c, 1);
}

}  // namespace derive
