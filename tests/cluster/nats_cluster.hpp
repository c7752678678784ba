#pragma once
// Real nats-server processes for the cluster tests and benchmark (JetStream
// on 127.0.0.1; failures throw std::runtime_error):
// one server, or a cluster of n with their own ports, configs and store
// directories under a temporary directory, killed (SIGKILL) and removed at
// the end.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <stdexcept>

#include "tests/common/child_process.hpp"

namespace derive::testing {

inline constexpr const char* nats_server_binary = "/usr/sbin/nats-server";

// A port free on 127.0.0.1 right now (the kernel's choice for port 0).
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline bool port_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

// A fresh directory under /tmp, removed with everything in it.
class scratch_dir {
 public:
  scratch_dir() {
    std::string pattern = "/tmp/derive-cluster-XXXXXX";
    path_ = ::mkdtemp(pattern.data());
  }
  ~scratch_dir() {
    std::error_code ec;
    if (!keep_) std::filesystem::remove_all(path_, ec);
  }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }
  // Keeps the directory at the end (a failed test's diagnosis); its path.
  std::string keep() {
    keep_ = true;
    return path_;
  }

 private:
  std::string path_;
  bool keep_ = false;
};

// The last `lines` lines of the text file at `path`.
inline std::string file_tail(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(std::move(line));
  std::string out;
  for (size_t k = all.size() > lines ? all.size() - lines : 0; k < all.size(); ++k)
    out += all[k] + "\n";
  return out;
}

class nats_cluster {
 public:
  // n servers; n > 1 forms a cluster (routes between all of them).
  explicit nats_cluster(int n) {
    std::string pattern = "/tmp/derive-nats-XXXXXX";
    dir_ = ::mkdtemp(pattern.data());
    for (int i = 0; i < n; ++i) nodes_.push_back({free_port(), free_port(), std::nullopt});
    for (int i = 0; i < n; ++i) write_config(i);
    for (int i = 0; i < n; ++i) start(i);
  }
  ~nats_cluster() {
    for (int i = 0; i < size(); ++i) kill(i);
    std::error_code ec;
    if (!keep_) std::filesystem::remove_all(dir_, ec);
  }

  int size() const { return static_cast<int>(nodes_.size()); }
  std::string url(int i) const {
    return "nats://127.0.0.1:" + std::to_string(nodes_[i].port);
  }
  std::vector<std::string> urls() const {
    std::vector<std::string> out;
    for (int i = 0; i < size(); ++i) out.push_back(url(i));
    return out;
  }
  std::string name(int i) const { return "n" + std::to_string(i + 1); }
  int index_of(const std::string& name) const {
    for (int i = 0; i < size(); ++i)
      if (this->name(i) == name) return i;
    return -1;
  }
  bool running(int i) const { return nodes_[i].process.has_value(); }

  // Starts server i (again) and waits until it accepts connections.
  void start(int i) {
    auto& node = nodes_[i];
    const std::string conf = dir_ + "/" + name(i) + ".conf";
    const std::string log = dir_ + "/" + name(i) + ".log";
    node.process.emplace(child_process::exec_logged({nats_server_binary, "-c", conf}, log));
    if (!node.process->started())
      throw std::runtime_error("could not start " + std::string(nats_server_binary));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!port_accepts(node.port)) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("nats-server " + name(i) + " did not start; see " + log);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // SIGKILLs server i (no-op when not running).
  void kill(int i) { nodes_[i].process.reset(); }

  // Freezes server i (SIGSTOP: it answers nothing, connections stay open)
  // and lets it go on (SIGCONT).
  void pause(int i) {
    if (running(i)) ::kill(nodes_[i].process->pid(), SIGSTOP);
  }
  void resume(int i) {
    if (running(i)) ::kill(nodes_[i].process->pid(), SIGCONT);
  }

  // The last `lines` lines of server i's log (its output across restarts).
  std::string log_tail(int i, size_t lines) const {
    return file_tail(dir_ + "/" + name(i) + ".log", lines);
  }

  // Keeps the servers' directory (configs, logs, stores) at the end: for a
  // failed test's diagnosis. Returns its path.
  std::string keep() {
    keep_ = true;
    return dir_;
  }

 private:
  struct node {
    int port, cluster_port;
    std::optional<child_process> process;  // killed and reaped when reset
  };

  void write_config(int i) {
    std::ofstream out(dir_ + "/" + name(i) + ".conf");
    out << "server_name: " << name(i) << "\n"
        << "listen: 127.0.0.1:" << nodes_[i].port << "\n"
        << "jetstream { store_dir: \"" << dir_ << "/" << name(i) << "\" }\n";
    if (size() > 1) {
      out << "cluster { name: derive_test, listen: 127.0.0.1:" << nodes_[i].cluster_port
          << ", routes: [";
      for (int j = 0; j < size(); ++j)
        out << (j ? ", " : "") << "nats-route://127.0.0.1:" << nodes_[j].cluster_port;
      out << "] }\n";
    }
  }

  std::string dir_;
  std::vector<node> nodes_;
  bool keep_ = false;
};

}  // namespace derive::testing
