#include "common/server_flags.hpp"

#include <cstdlib>
#include <filesystem>
#include <iostream>

namespace samples {

bool command_line::next() {
  if (++i_ >= argc_) return false;
  arg_ = argv_[i_];
  return true;
}

bool command_line::is(const std::string& flag) const {
  return arg_ == flag || arg_.rfind(flag + "=", 0) == 0;
}

std::optional<std::string> command_line::value(bool empty_ok) {
  std::optional<std::string> v;
  if (auto eq = arg_.find('='); eq != std::string::npos) v = arg_.substr(eq + 1);
  else if (i_ + 1 < argc_) v = std::string(argv_[++i_]);
  if (!v || (v->empty() && !empty_ok)) {
    problem(flag() + " needs a value");
    return std::nullopt;
  }
  return v;
}

std::optional<unsigned long> command_line::number(unsigned long min, unsigned long max) {
  auto v = value();
  auto n = v ? parse_number(*v, max) : std::nullopt;
  if (!n || *n < min) {
    if (v) problem(flag() + " must be a number from " + std::to_string(min) + " to " +
                   std::to_string(max));
    return std::nullopt;
  }
  return n;
}

void command_line::unknown() const { problem("unknown option " + arg_ + " (see --help)"); }

void command_line::problem(const std::string& message) const {
  std::cerr << program_ << ": " << message << "\n";
}

std::optional<unsigned long> parse_number(const std::string& s, unsigned long max) {
  if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  unsigned long n = std::stoul(s);
  if (n > max) return std::nullopt;
  return n;
}

void server_flags::from_environment(const char* port_variable, const char* data_variable) {
  if (const char* p = std::getenv(port_variable); p && *p) port_text_ = p;
  if (const char* d = std::getenv(data_variable); d && *d) data = d;
}

taken server_flags::take(command_line& args) {
  if (args.arg() == "--relaxed") {
    relaxed = true;
  } else if (args.is("--port")) {
    auto v = args.value();
    if (!v) return taken::error;
    port_text_ = *v;
  } else if (args.is("--data")) {
    auto v = args.value();
    if (!v) return taken::error;
    data = *v;
  } else if (args.is("--www")) {
    auto v = args.value(true);  // empty: no page
    if (!v) return taken::error;
    www = *v;
  } else if (args.is("--threads")) {
    auto n = args.number(1, 64);
    if (!n) return taken::error;
    threads = static_cast<unsigned>(*n);
  } else {
    return taken::no;
  }
  return taken::yes;
}

bool server_flags::finish(const command_line& args) {
  if (!port_text_) return true;
  auto n = parse_number(*port_text_, 65535);
  if (!n) {
    args.problem("the port must be a number from 0 to 65535, not '" + *port_text_ + "'");
    return false;
  }
  port = static_cast<uint16_t>(*n);
  return true;
}

std::string server_flags::data_path() const {
  std::error_code ec;
  return std::filesystem::absolute(data, ec).lexically_normal().string();
}

derive::web::server_options server_flags::server_options(const std::string& client_dir) const {
  derive::web::server_options o;
  o.port = port;
  o.threads = threads;
  o.static_dir = www;
  o.client_dir = client_dir;
  return o;
}

derive::runtime_options server_flags::runtime_options() const {
  derive::runtime_options o;
  o.data_dir = data_path();
  if (relaxed) o.storage.mode = derive::durability::relaxed;
  return o;
}

}  // namespace samples
