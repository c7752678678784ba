// booking: a live seat map on Derive, with a browser UI (README.md).
//
//   booking [--port N] [--data DIR] [--relaxed] [--www DIR] [--help]
//
// Wires the runtime (booking_views.hpp) to the HTTP/WebSocket server and runs
// until SIGINT or SIGTERM.

#include <iostream>
#include <optional>

#include <derive/runtime.hpp>
#include <derive/signals.hpp>
#include <derive/web/server.hpp>

#include "booking/booking_views.hpp"
#include "common/server_flags.hpp"

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
  --threads N   network (Asio) threads, 1..64 (default: one per two
                cores, at least one).
  --www DIR     the folder of the web page (default: the source tree's
                samples/booking/www).
  --help        show this text and exit.
)";

// Flags and environment; prints the problem and returns nullopt on error.
std::optional<samples::server_flags> parse_options(int argc, char** argv, bool& help) {
  samples::command_line args("booking", argc, argv);
  samples::server_flags flags;
  flags.port = 8081;
  flags.data = "data-booking";
  flags.www = BOOKING_WWW_DIR;
  flags.from_environment("BOOKING_PORT", "BOOKING_DATA");
  while (args.next()) {
    if (args.is_help()) {
      help = true;
      return flags;
    }
    auto took = flags.take(args);
    if (took == samples::taken::error) return std::nullopt;
    if (took == samples::taken::no) {
      args.unknown();
      return std::nullopt;
    }
  }
  if (!flags.finish(args)) return std::nullopt;
  return flags;
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
  auto data = opts->data_path();
  derive::runtime rt(opts->runtime_options());
  booking::install(rt);
  if (auto st = rt.start(); !st) {
    std::cerr << "booking: cannot start: " << st.to_string() << "\n";
    return 1;
  }
  derive::web::server srv(rt, opts->server_options(DERIVE_CLIENT_DIR));
  if (auto st = srv.start(); !st) {
    std::cerr << "booking: cannot listen on 127.0.0.1:" << opts->port << ": " << st.to_string()
              << "\n";
    rt.stop();
    return 1;
  }
  std::cout << "Derive booking listening on http://127.0.0.1:" << srv.port() << "/\n"
            << "data directory: " << data << (opts->relaxed ? " (relaxed)" : "")
            << "\nPress Ctrl-C to stop." << std::endl;
  signals.wait();
  std::cout << "booking: stopping" << std::endl;
  srv.stop();
  rt.stop();
  return 0;
}
