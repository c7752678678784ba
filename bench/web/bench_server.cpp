// web_bench_server: the Derive application the web benchmark drives.
//
//   web_bench_server --data DIR [--port N] [--relaxed] [--threads N] [--workers N]
//
// One view, "latest": key -> the data of the key's last event (an event with
// data null deletes the key). Serves protocol.md on 127.0.0.1 and prints
// "port N" on stdout once it listens; stops on SIGINT or SIGTERM.


#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include <derive/runtime.hpp>
#include <derive/signals.hpp>
#include <derive/view.hpp>
#include <derive/web/server.hpp>

namespace {

struct options {
  std::string data;
  uint16_t port = 0;
  bool relaxed = false;
  unsigned threads = 0;  // Asio; 0: the server's default
  unsigned workers = 2;  // CAF scheduler
};

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (arg == "--relaxed") {
      o.relaxed = true;
    } else if (arg == "--data" && (v = next())) {
      o.data = v;
    } else if (arg == "--port" && (v = next())) {
      o.port = static_cast<uint16_t>(std::atoi(v));
    } else if (arg == "--threads" && (v = next())) {
      o.threads = static_cast<unsigned>(std::atoi(v));
    } else if (arg == "--workers" && (v = next())) {
      o.workers = static_cast<unsigned>(std::atoi(v));
    } else {
      return false;
    }
  }
  return !o.data.empty();
}

derive::view_def latest_view() {
  return derive::view_def("latest", 1).from_log().apply(
      [](const derive::event& e, derive::view_txn& tx) {
        if (e.data == "null") {
          tx.erase(e.key);
        } else {
          tx.put(e.key, nlohmann::json::parse(e.data));
        }
      });
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  if (!parse(argc, argv, o)) {
    std::cerr << "usage: web_bench_server --data DIR [--port N] [--relaxed] [--threads N] "
                 "[--workers N]\n";
    return 2;
  }
  derive::stop_signals signals;  // SIGINT, SIGTERM: stop the server, then the runtime

  derive::runtime_options rt_options;
  rt_options.data_dir = o.data;
  rt_options.worker_threads = o.workers;
  if (o.relaxed) rt_options.storage.mode = derive::durability::relaxed;
  derive::runtime rt(rt_options);
  rt.add_view(latest_view());
  if (auto st = rt.start(); !st) {
    std::cerr << "web_bench_server: cannot start: " << st.to_string() << "\n";
    return 1;
  }
  derive::web::server_options srv_options;
  srv_options.port = o.port;
  srv_options.threads = o.threads;
  derive::web::server srv(rt, srv_options);
  if (auto st = srv.start(); !st) {
    std::cerr << "web_bench_server: cannot listen: " << st.to_string() << "\n";
    rt.stop();
    return 1;
  }
  std::cout << "port " << srv.port() << std::endl;
  signals.wait();
  srv.stop();
  rt.stop();
  return 0;
}
