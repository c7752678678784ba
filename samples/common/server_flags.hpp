#pragma once
// What the sample servers (docsearch, booking) share: reading their command
// line (flags "--name VALUE" or "--name=VALUE"; problems printed to stderr as
// "<program>: ..."), the flags every one of them takes, and the runtime
// options those give.
//
//   samples::command_line args("booking", argc, argv);
//   samples::server_flags flags{8081, "data-booking", BOOKING_WWW_DIR};
//   flags.from_environment("BOOKING_PORT", "BOOKING_DATA");
//   while (args.next()) {
//     if (args.is_help()) ...                            // the sample's own flags
//     auto took = flags.take(args);                      // the common ones
//     if (took == samples::taken::error) return 2;       // the problem is printed
//     if (took == samples::taken::no) { args.unknown(); return 2; }
//   }
//   if (!flags.finish(args)) return 2;
//   derive::runtime rt(flags.runtime_options());

#include <cstdint>
#include <optional>
#include <string>

#include <derive/runtime.hpp>
#include <derive/web/server.hpp>

namespace samples {

// The arguments of a program, one at a time.
class command_line {
 public:
  command_line(std::string program, int argc, char** argv)
      : program_(std::move(program)), argc_(argc), argv_(argv) {}

  // Moves to the next argument; false after the last.
  bool next();
  const std::string& arg() const { return arg_; }
  // The argument is `flag`, or `flag=...`.
  bool is(const std::string& flag) const;
  bool is_help() const { return arg_ == "--help" || arg_ == "-h"; }
  // The value of the flag: after '=', else the next argument (consumed).
  // Prints "<flag> needs a value" and returns nullopt when there is none, or
  // when it is empty and `empty_ok` is false.
  std::optional<std::string> value(bool empty_ok = false);
  // The value as a number from `min` to `max`; prints what is wrong otherwise.
  std::optional<unsigned long> number(unsigned long min, unsigned long max);
  // Prints "unknown option <arg> (see --help)".
  void unknown() const;
  // Prints "<program>: <message>".
  void problem(const std::string& message) const;

 private:
  std::string flag() const { return arg_.substr(0, arg_.find('=')); }

  std::string program_;
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string arg_;
};

// A decimal number from 0 to `max` (at most 6 digits), or nullopt.
std::optional<unsigned long> parse_number(const std::string& s, unsigned long max);

enum class taken { no, yes, error };

// The flags every sample server takes: --port N, --data DIR, --threads N
// (1-64), --relaxed, --www DIR (empty: no page).
struct server_flags {
  uint16_t port = 8080;
  std::string data = "data";
  std::string www;
  unsigned threads = 0;  // 0: the server's default (server_options::threads)
  bool relaxed = false;

  // Port and data directory from environment variables (flags win).
  void from_environment(const char* port_variable, const char* data_variable);
  // Takes the current argument when it is one of the flags above.
  taken take(command_line& args);
  // Checks the port (given as a flag or in the environment); false, with
  // the problem printed, when it is not a number from 0 to 65535.
  bool finish(const command_line& args);

  // The runtime options: the data directory made absolute, the durability.
  derive::runtime_options runtime_options() const;
  // The server options: port, threads, the page's folder (www) and the
  // browser client's (`client_dir`).
  derive::web::server_options server_options(const std::string& client_dir) const;
  // The data directory made absolute (what runtime_options() uses).
  std::string data_path() const;

 private:
  std::optional<std::string> port_text_;
};

}  // namespace samples
