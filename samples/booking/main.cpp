// booking: a live seat map on Derive, with a browser UI (README.md).
//
//   booking [--port N] [--data DIR] [--relaxed] [--www DIR] [--help]
//
// Wires the runtime (booking_views.hpp) to the HTTP/WebSocket server and runs
// until SIGINT or SIGTERM.

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include <derive/runtime.hpp>
#include <derive/signals.hpp>
#include <derive/web/server.hpp>

#include "booking/booking_views.hpp"

#ifndef BOOKING_WWW_DIR
#define BOOKING_WWW_DIR ""
#endif
#ifndef DERIVE_CLIENT_DIR
#define DERIVE_CLIENT_DIR ""
#endif

namespace {

constexpr const char* usage_text = R"(Usage: booking [options]

A live seat map of a small theatre (200 seats, A1..J20) built on Derive: every
click is a claim in the durable log, the "seats" processor decides in log
order (the first claim of a seat wins) and writes each outcome back to the
log, and every open browser window sees each seat change within a moment.

Options:
  --port N      TCP port to listen on, 127.0.0.1 only (default 8081, beside
                docsearch's 8080; 0 picks a free port). Environment: BOOKING_PORT.
  --data DIR    data directory, created when missing (default ./data-booking).
                Environment: BOOKING_DATA.
  --relaxed     relaxed durability (acknowledged before the sync to disk).
  --threads N   network (Asio) threads, 1..64 (default 2).
  --www DIR     the folder of the web page (default: the source tree's
                samples/booking/www).
  --help        show this text and exit.
)";

struct options {
  uint16_t port = 8081;
  std::string data = "data-booking";
  bool relaxed = false;
  unsigned threads = 2;
  std::string www = BOOKING_WWW_DIR;
};

std::optional<uint16_t> parse_port(const std::string& s) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  unsigned long n = std::stoul(s);
  if (n > 65535) return std::nullopt;
  return static_cast<uint16_t>(n);
}

std::optional<options> parse_options(int argc, char** argv, bool& help) {
  options o;
  std::string port = "8081";
  if (const char* p = std::getenv("BOOKING_PORT"); p && *p) port = p;
  if (const char* d = std::getenv("BOOKING_DATA"); d && *d) o.data = d;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const std::string& flag) -> std::optional<std::string> {
      if (arg.rfind(flag + "=", 0) == 0) return arg.substr(flag.size() + 1);
      if (arg == flag && i + 1 < argc) return std::string(argv[++i]);
      return std::nullopt;
    };
    auto is = [&](const std::string& flag) { return arg == flag || arg.rfind(flag + "=", 0) == 0; };
    if (arg == "--help" || arg == "-h") {
      help = true;
      return o;
    } else if (arg == "--relaxed") {
      o.relaxed = true;
    } else if (is("--port") || is("--data") || is("--www") || is("--threads")) {
      std::string flag = arg.substr(0, arg.find('='));
      auto v = value(flag);
      if (!v || v->empty()) {
        std::cerr << "booking: " << flag << " needs a value\n";
        return std::nullopt;
      }
      if (flag == "--port") {
        port = *v;
      } else if (flag == "--threads") {
        auto n = parse_port(*v);
        if (!n || *n == 0 || *n > 64) {
          std::cerr << "booking: --threads must be a number from 1 to 64\n";
          return std::nullopt;
        }
        o.threads = *n;
      } else if (flag == "--data") o.data = *v;
      else o.www = *v;
    } else {
      std::cerr << "booking: unknown option " << arg << " (see --help)\n";
      return std::nullopt;
    }
  }
  auto n = parse_port(port);
  if (!n) {
    std::cerr << "booking: the port must be a number from 0 to 65535, not '" << port << "'\n";
    return std::nullopt;
  }
  o.port = *n;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  bool help = false;
  auto opts = parse_options(argc, argv, help);
  if (help) {
    std::cout << usage_text;
    return 0;
  }
  if (!opts) return 2;
  derive::stop_signals signals;
  std::error_code ec;
  auto data = std::filesystem::absolute(opts->data, ec).lexically_normal();
  derive::runtime_options rt_options;
  rt_options.data_dir = data.string();
  if (opts->relaxed) rt_options.storage.mode = derive::durability::relaxed;
  derive::runtime rt(rt_options);
  booking::install(rt);
  if (auto st = rt.start(); !st) {
    std::cerr << "booking: cannot start: " << st.to_string() << "\n";
    return 1;
  }
  derive::web::server_options srv_options;
  srv_options.port = opts->port;
  srv_options.threads = opts->threads;
  srv_options.static_dir = opts->www;
  srv_options.client_dir = DERIVE_CLIENT_DIR;
  derive::web::server srv(rt, srv_options);
  if (auto st = srv.start(); !st) {
    std::cerr << "booking: cannot listen on 127.0.0.1:" << opts->port << ": " << st.to_string()
              << "\n";
    rt.stop();
    return 1;
  }
  std::cout << "Derive booking listening on http://127.0.0.1:" << srv.port() << "/\n"
            << "data directory: " << data.string() << (opts->relaxed ? " (relaxed)" : "")
            << "\nPress Ctrl-C to stop." << std::endl;
  signals.wait();
  std::cout << "booking: stopping" << std::endl;
  srv.stop();
  rt.stop();
  return 0;
}
