#include "docsearch/importer.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace docsearch {
namespace {

// A query parameter value, percent-encoded (unreserved characters as they are).
std::string percent_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

constexpr size_t max_key_bytes = 1024;
constexpr size_t max_title_bytes = 200;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

// Valid UTF-8 (shortest form, no surrogates, at most U+10FFFF) without NUL.
// Returns the offset of the first bad byte, or nullopt when valid.
std::optional<size_t> first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return i;
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return i;
    }
    i += len;
  }
  return std::nullopt;
}

// `s` cut to at most `max` bytes at a UTF-8 boundary.
std::string cut_utf8(std::string s, size_t max) {
  if (s.size() <= max) return s;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  s.resize(end);
  return s;
}

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// Title and text of a file's content (see importer.hpp).
std::pair<std::string, std::string> title_and_text(const std::string& content,
                                                   const fs::path& file) {
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string::npos) end = content.size();
    std::string_view line = trim(std::string_view(content).substr(pos, end - pos));
    if (!line.empty()) {
      std::string_view heading = line;
      if (heading.front() == '#') {
        while (!heading.empty() && heading.front() == '#') heading.remove_prefix(1);
        heading = trim(heading);
      }
      std::string title = cut_utf8(std::string(heading), max_title_bytes);
      if (title.empty()) break;
      return {title, end < content.size() ? content.substr(end + 1) : std::string()};
    }
    pos = end + 1;
  }
  return {file.stem().string(), content};
}

// Two FNV-1a 64-bit hashes with different bases: a 128-bit fingerprint.
struct fingerprint {
  uint64_t a = 0xcbf29ce484222325ull;
  uint64_t b = 0x84222325cbf29ce4ull;
  void add(std::string_view s) {
    for (unsigned char c : s) {
      a = (a ^ c) * 0x100000001b3ull;
      b = (b ^ c) * 0x100000001b3ull;
      b ^= b >> 29;
    }
    a = (a ^ 0xff) * 0x100000001b3ull;  // separator
    b = (b ^ 0xfe) * 0x100000001b3ull;
  }
  std::string hex() const {
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(a),
                  static_cast<unsigned long long>(b));
    return buf;
  }
};

struct url_parts {
  std::string host;
  std::string port;
};

std::optional<url_parts> parse_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) return std::nullopt;
  std::string rest = url.substr(scheme.size());
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    if (rest.find_first_not_of('/', slash) != std::string::npos) return std::nullopt;
    rest.resize(slash);
  }
  url_parts p;
  auto colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find(']') == std::string::npos) {
    p.host = rest.substr(0, colon);
    p.port = rest.substr(colon + 1);
  } else {
    p.host = rest;
    p.port = "80";
  }
  if (p.host.size() > 2 && p.host.front() == '[' && p.host.back() == ']') {
    p.host = p.host.substr(1, p.host.size() - 2);
  }
  if (p.host.empty() || p.port.empty() ||
      p.port.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return p;
}

struct http_answer {
  unsigned status = 0;
  std::string body;
};

// One keep-alive HTTP/1.1 connection, reconnected when it breaks.
class http_client {
 public:
  http_client(url_parts url, std::string token)
      : url_(std::move(url)), token_(std::move(token)), stream_(ioc_) {}

  // Sends one request; on a network error reconnects and retries (a few
  // times, with a short back-off). Returns nullopt with `error` set when the
  // server cannot be reached.
  std::optional<http_answer> send(http::verb verb, const std::string& target,
                                  const std::string& body, const std::string& idempotency_key,
                                  std::string& error) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (attempt) std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
      beast::error_code ec;
      if (!connected_ && !connect(ec)) {
        error = "cannot connect to " + url_.host + ":" + url_.port + ": " + ec.message();
        continue;
      }
      http::request<http::string_body> req{verb, target, 11};
      req.set(http::field::host, url_.host + ":" + url_.port);
      req.set(http::field::user_agent, "docsearch-import");
      if (!body.empty()) {
        req.set(http::field::content_type, "application/json");
        req.body() = body;
      }
      if (!idempotency_key.empty()) req.set("Idempotency-Key", idempotency_key);
      if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
      req.prepare_payload();
      req.keep_alive(true);
      stream_.expires_after(std::chrono::seconds(60));
      http::write(stream_, req, ec);
      beast::flat_buffer buffer;
      http::response_parser<http::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      if (!ec) http::read(stream_, buffer, parser, ec);
      if (ec) {
        error = "HTTP request failed: " + ec.message();
        close();
        continue;
      }
      auto& res = parser.get();
      http_answer a{static_cast<unsigned>(res.result_int()), std::move(res.body())};
      if (!res.keep_alive()) close();
      if (a.status == 503) {  // shutting down or not ready: retry the same request
        error = "server unavailable (503): " + a.body;
        continue;
      }
      return a;
    }
    return std::nullopt;
  }

 private:
  bool connect(beast::error_code& ec) {
    net::ip::tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(url_.host, url_.port, ec);
    if (ec) return false;
    stream_.expires_after(std::chrono::seconds(10));
    stream_.connect(results, ec);
    connected_ = !ec;
    return connected_;
  }
  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
    stream_.close();
    connected_ = false;
  }

  url_parts url_;
  std::string token_;
  net::io_context ioc_;
  beast::tcp_stream stream_;
  bool connected_ = false;
};

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1024.0 * 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.2f GB", b / (1024.0 * 1024 * 1024));
  } else if (b >= 1024.0 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f MB", b / (1024.0 * 1024));
  } else if (b >= 1024.0) {
    std::snprintf(buf, sizeof buf, "%.1f KB", b / 1024.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f B", b);
  }
  return buf;
}

// A one-line progress bar on a terminal, redrawn at most 10 times a second.
class progress_bar {
 public:
  progress_bar(std::ostream& out, bool enabled, uint64_t total)
      : out_(out), enabled_(enabled), total_(total), start_(clock_type::now()) {}
  void update(uint64_t done, uint64_t bytes, bool force = false) {
    if (!enabled_) return;
    auto now = clock_type::now();
    if (!force && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    constexpr int width = 30;
    double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
    int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    double secs = std::max(seconds_since(start_), 1e-6);
    char line[160];
    std::snprintf(line, sizeof line, "\r[%s] %3d%% %llu/%llu files  %s  %.0f docs/s ",
                  bar.c_str(), static_cast<int>(frac * 100),
                  static_cast<unsigned long long>(done),
                  static_cast<unsigned long long>(total_), human_bytes(bytes).c_str(),
                  static_cast<double>(done) / secs);
    out_ << line << std::flush;
    drawn_ = true;
  }
  void finish() {
    if (drawn_) out_ << "\n" << std::flush;
    drawn_ = false;
  }

 private:
  std::ostream& out_;
  bool enabled_;
  uint64_t total_;
  clock_type::time_point start_;
  clock_type::time_point last_{};
  bool drawn_ = false;
};

struct pending_batch {
  std::string body = "[";
  size_t count = 0;
  uint64_t bytes = 0;
  fingerprint fp;
};

}  // namespace

import_report import_directory(const import_options& options, std::ostream& err) {
  import_report report;
  auto fail = [&](std::string message) {
    report.ok = false;
    report.error = std::move(message);
    return report;
  };
  auto url = parse_url(options.url);
  if (!url) return fail("the URL must look like http://HOST:PORT, not '" + options.url + "'");
  if (options.batch_size < 1 || options.batch_size > 1000) {
    return fail("the batch size must be from 1 to 1000");
  }
  std::error_code ec;
  fs::path root = fs::absolute(options.dir, ec).lexically_normal();
  if (ec || !fs::is_directory(root, ec)) return fail("not a directory: " + options.dir);

  // The files, in path order.
  std::vector<std::pair<std::string, fs::path>> files;  // relative path, full path
  for (auto it = fs::recursive_directory_iterator(
           root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.filename().string().rfind('.', 0) == 0) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    files.emplace_back(p.lexically_relative(root).generic_string(), p);
  }
  if (ec) return fail("cannot list " + root.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  report.files = files.size();

  http_client client(*url, options.token);
  progress_bar bar(err, options.progress && ::isatty(2), files.size());
  const auto start = clock_type::now();
  uint64_t done = 0;
  pending_batch batch;
  std::string error;

  auto skip = [&](const std::string& rel, const std::string& why, uint64_t& counter) {
    ++counter;
    bar.finish();
    err << "docsearch import: skipping " << rel << ": " << why << "\n";
  };

  auto send = [&]() -> bool {
    if (batch.count == 0) return true;
    batch.body += "]";
    std::string key = "docsearch-import-" + batch.fp.hex();
    auto answer = client.send(http::verb::post, "/v1/events", batch.body, key, error);
    if (!answer) return false;
    if (answer->status != 200 && answer->status != 201) {
      error = "the server refused a batch (HTTP " + std::to_string(answer->status) +
              "): " + answer->body;
      return false;
    }
    json res = json::parse(answer->body, nullptr, false);
    if (!res.is_object() || !res.contains("offsets") || !res["offsets"].is_array() ||
        res["offsets"].empty()) {
      error = "unexpected answer to an append: " + answer->body;
      return false;
    }
    report.last_offset =
        std::max(report.last_offset, res["offsets"].back().get<uint64_t>());
    ++report.requests;
    report.documents += batch.count;
    report.bytes += batch.bytes;
    if (answer->status == 200) report.replayed += batch.count;
    batch = pending_batch{};
    return true;
  };

  for (const auto& [rel, path] : files) {
    ++done;
    auto size = fs::file_size(path, ec);
    if (ec) {
      skip(rel, "cannot read: " + ec.message(), report.skipped_other);
      continue;
    }
    if (rel.size() > max_key_bytes || first_invalid_utf8(rel)) {
      skip(rel, "the path is not valid UTF-8 or longer than 1024 bytes (an event key)",
           report.skipped_other);
      continue;
    }
    if (size + 64 > options.max_body_bytes) {
      skip(rel, "too large (" + human_bytes(static_cast<double>(size)) +
                    "; a document must fit in one request of " +
                    human_bytes(static_cast<double>(options.max_body_bytes)) + ")",
           report.skipped_too_large);
      continue;
    }
    std::ifstream in(path, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in && !in.eof()) {
      skip(rel, "cannot read", report.skipped_other);
      continue;
    }
    if (auto bad = first_invalid_utf8(content)) {
      skip(rel, "not UTF-8 text (" +
                    std::string(content[*bad] == 0 ? "a NUL byte" : "an invalid byte") +
                    " at offset " + std::to_string(*bad) + ")",
           report.skipped_not_utf8);
      continue;
    }
    auto [title, text] = title_and_text(content, path);
    json put{{"type", "doc.put"},
             {"key", options.prefix + rel},
             {"data", {{"title", title}, {"text", text}}}};
    if (!options.subject.empty()) put["subject"] = options.subject;
    std::string event = put.dump();
    if (event.size() + 2 > options.max_body_bytes) {
      skip(rel, "too large once encoded as JSON (" + human_bytes(double(event.size())) +
                    ", over the request limit of " +
                    human_bytes(double(options.max_body_bytes)) + ")",
           report.skipped_too_large);
      continue;
    }
    if (batch.count > 0 && batch.body.size() + 1 + event.size() + 1 > options.max_body_bytes) {
      if (!send()) break;
    }
    if (batch.count) batch.body += ",";
    batch.body += event;
    ++batch.count;
    batch.bytes += content.size();
    batch.fp.add(rel);
    batch.fp.add(content);
    if (!options.subject.empty()) batch.fp.add(options.subject);  // other events, other key
    if (batch.count >= options.batch_size && !send()) break;
    bar.update(done, report.bytes + batch.bytes);
  }
  if (error.empty()) send();
  bar.update(done, report.bytes, true);
  bar.finish();
  report.append_seconds = seconds_since(start);
  if (!error.empty()) return fail(error);

  // Until the last document is searchable.
  if (report.last_offset > 0) {
    // With a token, through the search query limited to the prefix (what the
    // rules of auth mode allow); reading the search view itself is refused.
    std::string target = options.token.empty()
                             ? "/v1/views/search?limit=1&timeout_ms=30000&after="
                             : "/v1/query/search/search?q=&in=" + percent_encode(options.prefix) +
                                   "&timeout_ms=30000&after=";
    target += std::to_string(report.last_offset);
    while (true) {
      auto answer = client.send(http::verb::get, target, "", "", error);
      if (!answer) return fail(error);
      if (answer->status == 200) break;
      if (answer->status != 504) {
        return fail("waiting for the search view failed (HTTP " +
                    std::to_string(answer->status) + "): " + answer->body);
      }
    }
  }
  report.searchable_seconds = seconds_since(start);
  report.ok = true;
  return report;
}

void print_report(const import_report& r, std::ostream& out) {
  auto rate = [](double n, double s) { return s > 0 ? n / s : 0.0; };
  char line[256];
  std::snprintf(line, sizeof line,
                "imported %llu documents (%s) in %llu requests: %.2f s to append, %.0f docs/s, "
                "%s/s\n",
                static_cast<unsigned long long>(r.documents), human_bytes(double(r.bytes)).c_str(),
                static_cast<unsigned long long>(r.requests), r.append_seconds,
                rate(double(r.documents), r.append_seconds),
                human_bytes(rate(double(r.bytes), r.append_seconds)).c_str());
  out << line;
  if (r.replayed) {
    out << "  " << r.replayed
        << " of them were already imported (idempotent replay: nothing appended)\n";
  }
  if (r.last_offset) {
    std::snprintf(line, sizeof line,
                  "  searchable after %.2f s (search view at offset %llu): %.0f docs/s overall\n",
                  r.searchable_seconds, static_cast<unsigned long long>(r.last_offset),
                  rate(double(r.documents), r.searchable_seconds));
    out << line;
  }
  uint64_t skipped = r.skipped_not_utf8 + r.skipped_too_large + r.skipped_other;
  out << "  skipped " << skipped << " of " << r.files << " files";
  if (skipped) {
    out << ": " << r.skipped_not_utf8 << " not UTF-8 text, " << r.skipped_too_large
        << " too large, " << r.skipped_other << " unreadable or with an unusable path";
  }
  out << "\n";
  if (!r.ok) out << "import stopped: " << r.error << "\n";
}

int import_main(int argc, char** argv) {
  static const char* usage = R"(Usage: docsearch import DIR [--url URL] [--batch N] [--no-progress]

Loads every file under DIR (recursively, skipping names that start with '.')
into a running docsearch server as documents, through POST /v1/events.
The id is the path relative to DIR, the title the first non-blank line (a
Markdown heading's '#' removed) or the file name, the text the rest.
Files that are not UTF-8 text or too large for one request (1 MiB) are
skipped and counted. Running it again appends nothing (idempotency keys).

Options:
  --url URL      the server (default http://127.0.0.1:8080)
  --batch N      documents per request, 1..1000 (default 50)
  --token T      a JWT for a server in auth mode (Authorization: Bearer);
                 environment: DERIVE_TOKEN
  --prefix P     put P before every document id, e.g. users/alice/ (in auth
                 mode a user may write only under users/<sub>/)
  --subject S    the events' subject: the author, whom
                 POST /v1/subjects/S/forget forgets (1..256 bytes)
  --no-progress  no progress bar on stderr
)";
  import_options o;
  if (const char* t = std::getenv("DERIVE_TOKEN"); t && *t) o.token = t;
  bool have_dir = false;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const std::string& flag) -> std::optional<std::string> {
      if (arg.rfind(flag + "=", 0) == 0) return arg.substr(flag.size() + 1);
      if (arg == flag && i + 1 < argc) return std::string(argv[++i]);
      return std::nullopt;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << usage;
      return 0;
    } else if (arg == "--no-progress") {
      o.progress = false;
    } else if (arg == "--url" || arg.rfind("--url=", 0) == 0) {
      auto v = value("--url");
      if (!v) {
        std::cerr << "docsearch import: --url needs a value\n";
        return 2;
      }
      o.url = *v;
    } else if (arg == "--token" || arg.rfind("--token=", 0) == 0 || arg == "--prefix" ||
               arg.rfind("--prefix=", 0) == 0 || arg == "--subject" ||
               arg.rfind("--subject=", 0) == 0) {
      std::string flag = arg.substr(0, arg.find('='));
      auto v = value(flag);
      if (!v || (flag == "--subject" && (v->empty() || v->size() > 256))) {
        std::cerr << "docsearch import: " << flag
                  << (flag == "--subject" ? " needs 1 to 256 bytes\n" : " needs a value\n");
        return 2;
      }
      (flag == "--token" ? o.token : flag == "--prefix" ? o.prefix : o.subject) = *v;
    } else if (arg == "--batch" || arg.rfind("--batch=", 0) == 0) {
      auto v = value("--batch");
      if (!v || v->empty() || v->size() > 4 ||
          v->find_first_not_of("0123456789") != std::string::npos) {
        std::cerr << "docsearch import: --batch must be a number from 1 to 1000\n";
        return 2;
      }
      o.batch_size = std::stoul(*v);
    } else if (!arg.empty() && arg[0] == '-') {
      std::cerr << "docsearch import: unknown option " << arg << " (see --help)\n";
      return 2;
    } else if (!have_dir) {
      o.dir = arg;
      have_dir = true;
    } else {
      std::cerr << "docsearch import: one directory only (see --help)\n";
      return 2;
    }
  }
  if (!have_dir) {
    std::cerr << usage;
    return 2;
  }
  import_report r = import_directory(o, std::cerr);
  print_report(r, std::cout);
  return r.ok ? 0 : 1;
}

}  // namespace docsearch
