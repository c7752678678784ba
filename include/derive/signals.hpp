#pragma once
// Waiting for the signals that ask a process to stop (SIGINT, SIGTERM).
//
//   derive::stop_signals signals;      // before starting anything
//   rt.start(); srv.start();
//   int sig = signals.wait();          // Ctrl-C, kill, or signals.notify()
//   srv.stop(); rt.stop();
//
// One object at a time per process. While it lives, SIGINT and SIGTERM only
// wake wait(); its destructor restores the previous handlers. With
// `catch_hangup`, SIGHUP wakes wait() too (which returns SIGHUP: reload
// something, then wait again) instead of ending the process:
//
//   derive::stop_signals signals(true);
//   while (signals.wait() == SIGHUP) srv.reload_tls();

namespace derive {

class stop_signals {
 public:
  explicit stop_signals(bool catch_hangup = false);
  ~stop_signals();
  stop_signals(const stop_signals&) = delete;
  stop_signals& operator=(const stop_signals&) = delete;

  // Blocks until SIGINT or SIGTERM (or a caught SIGHUP) arrives or notify() is called; returns the
  // signal's number (0 for notify()). Returns at once if one came earlier.
  int wait();
  // Wakes wait() from any thread (async-signal-safe).
  void notify();

 private:
  int pipe_[2] = {-1, -1};
  struct saved;
  saved* saved_ = nullptr;
};

}  // namespace derive
