#pragma once
// Child processes for the crash and cluster tests and the benchmarks: fork a
// function or execute a program with a pipe from it (or its output in a log
// file), read what it reports, SIGKILL it, reap it. The schedule of rounds
// the SIGKILL tests share is in kill_rounds.hpp.
//
//   auto child = child_process::fork([&](int fd) { work_and_report(fd); });
//   auto report = child.read_until_closed(std::chrono::seconds(90));
//   EXPECT_TRUE(child_process::killed(child.kill()));

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace derive::testing {

class child_process {
 public:
  // Forks; the child runs `body` with the write end of a pipe (the parent
  // reads the other end) and ends with _exit(0) if `body` returns.
  // started() is false when the pipe or the fork failed.
  static child_process fork(const std::function<void(int fd)>& body) {
    child_process c;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return c;
    c.pid_ = ::fork();
    if (c.pid_ == 0) {
      ::close(fds[0]);
      body(fds[1]);
      ::_exit(0);
    }
    ::close(fds[1]);
    c.fd_ = fds[0];  // closed by the destructor, also when the fork failed
    return c;
  }

  // Executes `argv` (argv[0] a path) with its stdout on the pipe; its stderr
  // stays the test's. A child that cannot execute ends with exit code 127.
  static child_process exec(const std::vector<std::string>& argv) {
    child_process c;
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int fds[2];
    if (argv.empty() || ::pipe2(fds, O_CLOEXEC) != 0) return c;
    c.pid_ = ::fork();
    if (c.pid_ == 0) {
      ::dup2(fds[1], STDOUT_FILENO);  // the copy is not close-on-exec
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    c.fd_ = fds[0];  // closed by the destructor, also when the fork failed
    return c;
  }

  // Executes `argv` with its stdout and stderr appended to the file `log`
  // (for servers whose output is read only when something fails); there is
  // no pipe to read. A child that cannot execute ends with exit code 127.
  static child_process exec_logged(const std::vector<std::string>& argv, const std::string& log) {
    child_process c;
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (argv.empty() || out < 0) return c;
    c.pid_ = ::fork();
    if (c.pid_ == 0) {
      ::dup2(out, STDOUT_FILENO);  // the copies are not close-on-exec
      ::dup2(out, STDERR_FILENO);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(out);
    c.piped_ = false;
    return c;
  }

  child_process(child_process&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)),
        fd_(std::exchange(o.fd_, -1)),
        piped_(o.piped_),
        buffered_(std::move(o.buffered_)) {}
  child_process& operator=(child_process&&) = delete;
  child_process(const child_process&) = delete;

  // A child still running is killed and reaped.
  ~child_process() {
    if (pid_ > 0) kill();
    if (fd_ >= 0) ::close(fd_);
  }

  bool started() const { return pid_ > 0 && (fd_ >= 0 || !piped_); }
  pid_t pid() const { return pid_; }

  // What the child writes until it closes the pipe (or ends), or until
  // `timeout` passes.
  std::string read_until_closed(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (fill(deadline)) {
    }
    return std::exchange(buffered_, {});
  }

  // The next line (without its '\n'); nullopt at the end or after `timeout`.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto nl = buffered_.find('\n'); nl != std::string::npos) {
        std::string line = buffered_.substr(0, nl);
        buffered_.erase(0, nl + 1);
        return line;
      }
      if (!fill(deadline)) return std::nullopt;
    }
  }

  // The next record of sizeof(T) bytes; false when the pipe ends first or,
  // with a `timeout`, when it passes.
  template <class T>
  bool read_record(T& out, std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
    auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                            : std::chrono::steady_clock::time_point::max();
    while (buffered_.size() < sizeof(T))
      if (!fill(deadline)) return false;
    std::memcpy(&out, buffered_.data(), sizeof(T));
    buffered_.erase(0, sizeof(T));
    return true;
  }

  // Sends SIGKILL (unless the child was reaped) and reaps; the wait status.
  int kill() {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
    return wait();
  }

  // Sends SIGTERM (unless the child was reaped) and waits; the wait status.
  int terminate() {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
    return wait();
  }

  // Waits until the child ends; its wait status (the last one, once reaped).
  int wait() {
    if (pid_ > 0) {
      while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
    return status_;
  }

  static bool killed(int wstatus) { return WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL; }

 private:
  child_process() = default;

  // Reads what is there into buffered_, waiting until `deadline`; false at
  // the end of the pipe or the deadline.
  bool fill(std::chrono::steady_clock::time_point deadline) {
    if (fd_ < 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int wait_ms = -1;
    if (deadline != std::chrono::steady_clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      wait_ms = static_cast<int>(left.count());
    }
    int ready = ::poll(&p, 1, wait_ms);
    if (ready < 0 && errno == EINTR) return true;
    if (ready <= 0) return false;
    char buf[4096];
    auto n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) return false;
    buffered_.append(buf, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  int status_ = 0;
  bool piped_ = true;     // false for exec_logged
  std::string buffered_;  // read, not yet returned
};

}  // namespace derive::testing
