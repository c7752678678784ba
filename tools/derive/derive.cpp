// `derive`: the command-line tool of a Derive server (docs/operating.md,
// "The derive tool"). It speaks the server's HTTP API (docs/protocol.md).
//
// Exit codes: 0 done (healthy); 1 a check failed (an audit mismatch, a scrub
// problem, a failed view or audit in `status`, forgotten data still found);
// 2 usage; 3 no answer from the server; 4 the server answered an error.

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/byte_scan.hpp"
#include "tools/derive/http_client.hpp"

namespace derive::tool {
namespace {

using nlohmann::json;

enum exit_code { ok = 0, check_failed = 1, usage = 2, unreachable = 3, server_error = 4 };

constexpr const char* help_text = R"(usage: derive [--url URL] [--token TOKEN] [--cacert FILE] [--json] COMMAND [ARGS]

Commands:
  status                         views, versions, offsets, lag and audits, as a table
  watch [--interval S] [--iterations N]
                                 the same, live, with events/s and progress bars
  tail [--from N] [--type T]... [--prefix P] [--once]
                                 follow the log, one event per line
  rebuild VIEW --version N       build version N of VIEW beside the serving one (N served:
                                 a fresh copy of it, served once ready)
  cutover VIEW --version N       serve version N of VIEW
  rollback VIEW                  serve the previous version of VIEW again
  audit VIEW [--no-wait]         rebuild VIEW privately and compare (exit 1: mismatch)
  scrub [--no-wait]              check every log record (exit 1: a problem)
  forget SUBJECT                 forget a subject everywhere; prints the receipt
                                 (on a terminal, the progress first, on stderr)
  verify-forgotten --data DIR STRING...
                                 scan every file under DIR for the strings (exit 1: found)

Options:
  --url URL      the server, http:// or https:// (default: $DERIVE_URL or
                 http://127.0.0.1:8080)
  --token TOKEN  a bearer token with the admin scope (default: $DERIVE_TOKEN)
  --cacert FILE  for https://: trust the CA certificates (PEM) in FILE, for
                 example a self-signed server certificate, instead of the
                 system's (default: $DERIVE_CACERT)
  --json         machine-readable output (one JSON document, or one per line)
  --timeout S    seconds to wait for an answer, or for an audit or scrub (default 30;
                 forget waits for its answer without a limit unless given)

Exit codes: 0 ok, 1 a check failed, 2 usage, 3 no answer from the server,
4 the server answered an error.
)";

volatile sig_atomic_t interrupted = 0;

struct options {
  std::string url;
  std::string token;
  std::string ca_file;
  bool as_json = false;
  int timeout_s = 30;
  bool timeout_given = false;  // --timeout on the command line
  std::string command;
  std::vector<std::string> args;                   // positional
  std::multimap<std::string, std::string> flags;   // --name value
  std::map<std::string, bool> switches;            // --name
  std::string flag(const std::string& name, const std::string& fallback = "") const {
    auto it = flags.find(name);
    return it == flags.end() ? fallback : it->second;
  }
  bool has(const std::string& name) const { return switches.count(name) > 0; }
};

// --json anywhere on the command line: usage errors are JSON too (set first
// thing by parse(), so that its own errors are).
bool json_errors = false;

int fail_usage(const std::string& why) {
  if (json_errors)
    std::cout << json{{"error", {{"code", "usage"}, {"message", why}}}}.dump() << "\n";
  std::cerr << "derive: " << why << "\n(run derive --help)\n";
  return usage;
}

// Prints an error (and as JSON with --json) and returns `code`.
int report_error(const options& o, int code, const std::string& error_code,
                 const std::string& message) {
  if (o.as_json)
    std::cout << json{{"error", {{"code", error_code}, {"message", message}}}}.dump() << "\n";
  std::cerr << "derive: " << message << "\n";
  return code;
}

// The answer of a call: its JSON, or an exit code (already reported).
struct answer {
  std::optional<json> body;
  unsigned status = 0;
  int code = ok;
};

// The answer `r` to `method target`: its JSON body, or the error reported.
answer interpret(const options& o, const std::string& method, const std::string& target,
                 const http_result& r) {
  answer a;
  if (!r.connected) {
    a.code = report_error(o, unreachable, "unreachable", r.error);
    return a;
  }
  a.status = r.status;
  auto body = json::parse(r.body, nullptr, false);
  if (r.status >= 300) {
    std::string code = "http_" + std::to_string(r.status), message = r.body;
    if (!body.is_discarded() && body.contains("error") && body["error"].is_object()) {
      code = body["error"].value("code", code);
      message = body["error"].value("message", message);
    }
    a.code = report_error(o, server_error, code,
                          method + " " + target + " answered " + std::to_string(r.status) + " " +
                              code + ": " + message);
    return a;
  }
  if (body.is_discarded()) {
    a.code = report_error(o, server_error, "bad_answer",
                          method + " " + target + " did not answer JSON");
    return a;
  }
  a.body = std::move(body);
  return a;
}

answer call(const options& o, const http_client& http, const std::string& method,
            const std::string& target) {
  return interpret(o, method, target, http.request(method, target));
}

std::string num(const json& v) {
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    std::ostringstream s;
    s.precision(3);
    s << v.get<double>();
    return s.str();
  }
  if (v.is_string()) return v.get<std::string>();
  return v.is_null() ? "-" : v.dump();
}

// `s` and spaces to `width`; at least one space after a longer `s`.
std::string pad(std::string s, size_t width) {
  s.append(s.size() < width ? width - s.size() : 1, ' ');
  return s;
}

std::string audit_cell(const json& audit) {
  if (!audit.is_object()) return "-";
  std::string at = " @" + num(audit.value("offset", json(0)));
  if (audit.value("ok", false)) return "ok" + at;
  size_t keys = audit.contains("differences") ? audit["differences"].size() : 0;
  return "FAILED" + at + (keys ? " (" + std::to_string(keys) + (audit.value("more_differences", false) ? "+" : "") + " keys)" : "");
}

std::string bar(double fraction, size_t width) {
  fraction = std::max(0.0, std::min(1.0, fraction));
  size_t full = static_cast<size_t>(fraction * width + 0.5);
  return "[" + std::string(full, '#') + std::string(width - full, '-') + "] " +
         std::to_string(static_cast<int>(fraction * 100)) + "%";
}

// GET /v1/views and /v1/health in one document: {"head", "views"}.
answer read_status(const options& o, const http_client& http) {
  auto health = call(o, http, "GET", "/v1/health");
  if (health.code != ok) return health;
  auto views = call(o, http, "GET", "/v1/views");
  if (views.code != ok) return views;
  answer a;
  a.body = json{{"head", health.body->value("head", json(0))},
                {"views", views.body->value("views", json::array())}};
  return a;
}

// Whether any view failed or failed its last audit.
bool unhealthy(const json& status) {
  for (const auto& v : status["views"]) {
    if (v.value("status", "") == "failed") return true;
    if (v.contains("audit") && v["audit"].is_object() && !v["audit"].value("ok", true)) return true;
  }
  return false;
}

// "N", or "N.gG" for a copy of version N rebuilt beside its served copy; a
// derived view's version names the upstream copy it is computed from
// ("2@documents/1.g1"): one view has a version per upstream copy.
std::string version_name(const json& ver) {
  std::string out = num(ver.value("version", json(0)));
  if (uint64_t g = ver.value("generation", uint64_t{0}); g > 0) out += ".g" + std::to_string(g);
  if (auto up = ver.value("upstream", std::string()); !up.empty()) out += "@" + up;
  return out;
}

// The table of `status` (and of each `watch` frame); `rates`: events/s by
// view (and "view/version"), `bars`: progress bars for lagging versions.
void print_table(const json& status, const std::map<std::string, double>& rates, bool bars) {
  const uint64_t head = status.value("head", uint64_t{0});
  std::cout << "head " << head << "\n";
  std::cout << pad("VIEW", 20) << pad("VERSION", 20) << pad("ROLE/STATUS", 13) << pad("OFFSET", 10)
            << pad("LAG", 8) << pad("EVENTS/S", 10) << "AUDIT\n";
  auto row = [&](const std::string& name, const json& version, const std::string& role,
                 const json& offset, const json& lag, const std::string& key,
                 const std::string& audit) {
    auto r = rates.find(key);
    std::cout << pad(name, 20) << pad(num(version), 20) << pad(role, 13) << pad(num(offset), 10)
              << pad(num(lag), 8)
              << pad(r == rates.end() ? "-" : std::to_string(std::llround(r->second)), 10)
              << audit;
    uint64_t behind = lag.is_number() ? lag.get<uint64_t>() : 0;
    if (bars && behind > 0 && head > 0 && offset.is_number())
      std::cout << "  " << bar(static_cast<double>(offset.get<uint64_t>()) / head, 20);
    std::cout << "\n";
  };
  for (const auto& v : status["views"]) {
    const std::string name = v.value("name", "?");
    json served = v.value("version", json(nullptr));  // with its generation when rebuilt
    if (v.contains("versions") && v["versions"].is_array())
      for (const auto& ver : v["versions"])
        if (ver.value("role", "") == "serving") served = json(version_name(ver));
    row(name, served, v.value("status", "?"), v.value("offset", json(0)),
        v.value("lag", json(0)), name, audit_cell(v.value("audit", json(nullptr))));
    if (v.value("status", "") == "failed") std::cout << "  error: " << v.value("error", "") << "\n";
    if (!v.contains("versions") || !v["versions"].is_array()) continue;
    for (const auto& ver : v["versions"]) {
      if (ver.value("role", "") == "serving") continue;
      row("  " + name, json(version_name(ver)), ver.value("role", "?"),
          ver.value("offset", json(0)), ver.value("lag", json(0)), name + "/" + version_name(ver),
          "");
    }
  }
}

int cmd_status(const options& o, const http_client& http) {
  auto s = read_status(o, http);
  if (s.code != ok) return s.code;
  if (o.as_json) std::cout << s.body->dump() << "\n";
  else print_table(*s.body, {}, false);
  return unhealthy(*s.body) ? check_failed : ok;
}

int cmd_watch(const options& o, const http_client& http) {
  const double interval = std::atof(o.flag("interval", "1").c_str());
  const long iterations = std::atol(o.flag("iterations", "0").c_str());
  if (interval <= 0) return fail_usage("--interval must be a positive number of seconds");
  const bool tty = isatty(STDOUT_FILENO) == 1;
  std::map<std::string, uint64_t> last_offsets;
  auto last_time = std::chrono::steady_clock::now();
  for (long i = 0; (iterations == 0 || i < iterations) && !interrupted; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::duration<double>(interval));
    auto s = read_status(o, http);
    if (s.code != ok) return s.code;
    auto now = std::chrono::steady_clock::now();
    double seconds = std::chrono::duration<double>(now - last_time).count();
    last_time = now;
    std::map<std::string, double> rates;
    std::map<std::string, uint64_t> offsets;
    for (const auto& v : (*s.body)["views"]) {
      const std::string name = v.value("name", "?");
      offsets[name] = v.value("offset", uint64_t{0});
      if (v.contains("versions") && v["versions"].is_array())
        for (const auto& ver : v["versions"])
          offsets[name + "/" + version_name(ver)] = ver.value("offset", uint64_t{0});
    }
    for (const auto& [key, offset] : offsets)
      if (auto it = last_offsets.find(key); it != last_offsets.end() && seconds > 0)
        rates[key] = static_cast<double>(offset - std::min(offset, it->second)) / seconds;
    last_offsets = offsets;
    if (o.as_json) {
      json frame = *s.body;
      frame["events_per_second"] = rates;
      std::cout << frame.dump() << std::endl;
      continue;
    }
    if (tty) std::cout << "\x1b[H\x1b[2J";
    print_table(*s.body, rates, tty);
    if (!tty) std::cout << "\n";
    std::cout.flush();
  }
  return ok;
}

int cmd_tail(const options& o, const http_client& http) {
  std::vector<std::string> types;
  for (auto [it, end] = o.flags.equal_range("type"); it != end; ++it) types.push_back(it->second);
  const std::string prefix = o.flag("prefix");
  uint64_t from = 0;
  if (o.flags.count("from")) {
    from = std::strtoull(o.flag("from").c_str(), nullptr, 10);
  } else {  // new events only, as tail -f
    auto h = call(o, http, "GET", "/v1/health");
    if (h.code != ok) return h.code;
    from = h.body->value("head", uint64_t{0}) + 1;
  }
  while (!interrupted) {
    auto page = call(o, http, "GET", "/v1/events?from=" + std::to_string(from) + "&limit=1000");
    if (page.code != ok) return page.code;
    const auto& events = (*page.body)["events"];
    for (const auto& e : events) {
      const std::string type = e.value("type", ""), key = e.value("key", "");
      bool wanted = key.rfind(prefix, 0) == 0 &&
                    (types.empty() || std::find(types.begin(), types.end(), type) != types.end());
      if (!wanted) continue;
      if (o.as_json) {
        std::cout << e.dump() << "\n";
      } else {
        std::cout << num(e.value("offset", json(0))) << " " << type << " " << key << " "
                  << e.value("data", json(nullptr)).dump() << "\n";
      }
    }
    std::cout.flush();
    from = page.body->value("next", from);
    if (events.empty()) {
      if (o.has("once")) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }
  return ok;
}

// rebuild / cutover / rollback: one admin POST, its answer printed.
int cmd_version(const options& o, const http_client& http) {
  if (o.args.size() != 1) return fail_usage(o.command + " takes one VIEW");
  std::string target = "/v1/admin/views/" + encode_segment(o.args[0]) + "/" + o.command;
  if (o.command != "rollback") {
    if (!o.flags.count("version")) return fail_usage(o.command + " needs --version N");
    target += "?version=" + encode_segment(o.flag("version"));
  }
  auto a = call(o, http, "POST", target);
  if (a.code != ok) return a.code;
  std::cout << (o.as_json ? a.body->dump() : a.body->dump(2)) << "\n";
  return ok;
}

// Polls `target` until `done` says so (or the timeout), drawing `progress`
// on a terminal.
std::optional<json> poll(const options& o, const http_client& http, const std::string& target,
                         const std::function<bool(const json&)>& done,
                         const std::function<std::string(const json&)>& progress, int& code) {
  const bool tty = isatty(STDOUT_FILENO) == 1 && !o.as_json;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.timeout_s);
  while (!interrupted) {
    auto a = call(o, http, "GET", target);
    if (a.code != ok) {
      code = a.code;
      return std::nullopt;
    }
    if (done(*a.body)) {
      if (tty) std::cout << "\r\x1b[K";
      return a.body;
    }
    if (tty && progress) std::cout << "\r\x1b[K" << progress(*a.body) << std::flush;
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  code = report_error(o, unreachable, "timeout",
                      "no result from " + target + " within " + std::to_string(o.timeout_s) +
                          " s (see --timeout); it may still be running");
  return std::nullopt;
}

int cmd_audit(const options& o, const http_client& http) {
  if (o.args.size() != 1) return fail_usage("audit takes one VIEW");
  const std::string target = "/v1/admin/views/" + encode_segment(o.args[0]) + "/audit";
  auto before = call(o, http, "GET", target);
  if (before.code != ok) return before.code;
  const json previous = (*before.body)["audit"];
  auto started = call(o, http, "POST", target);
  if (started.code != ok) return started.code;
  if (o.has("no-wait")) {
    std::cout << (o.as_json ? started.body->dump() : "audit of " + o.args[0] + " started") << "\n";
    return ok;
  }
  int code = ok;
  auto result = poll(
      o, http, target,
      [&](const json& b) { return b["audit"].is_object() && b["audit"] != previous; },
      [&](const json&) { return "auditing " + o.args[0] + " ..."; }, code);
  if (!result) return code;
  const json& audit = (*result)["audit"];
  if (o.as_json) {
    std::cout << audit.dump() << "\n";
  } else {
    std::cout << "view " << audit.value("view", "") << " v" << num(audit.value("version", json(1)))
              << " at offset " << num(audit.value("offset", json(0))) << ": "
              << (audit.value("ok", false) ? "ok" : "FAILED") << " ("
              << num(audit.value("events", json(0))) << " events rebuilt in "
              << num(audit.value("duration_ms", json(0))) << " ms)\n"
              << "  digest   " << audit.value("digest", "") << "\n"
              << "  expected " << audit.value("expected_digest", "") << "\n";
    if (audit.contains("error")) std::cout << "  error: " << audit.value("error", "") << "\n";
    for (const auto& d : audit["differences"])
      std::cout << "  key " << json(d.value("key", "")).dump() << ": live "
                << d.value("live", json(nullptr)).dump() << ", expected "
                << d.value("expected", json(nullptr)).dump() << "\n";
    if (audit.value("more_differences", false)) std::cout << "  (more keys differ)\n";
  }
  return audit.value("ok", false) ? ok : check_failed;
}

int cmd_scrub(const options& o, const http_client& http) {
  auto started = call(o, http, "POST", "/v1/admin/scrub");
  if (started.code != ok) return started.code;
  if (o.has("no-wait")) {
    std::cout << (o.as_json ? started.body->dump() : "log scrub started") << "\n";
    return ok;
  }
  int code = ok;
  auto result = poll(
      o, http, "/v1/admin/scrub",
      [](const json& b) { return b["scrub"].is_object() && !b["scrub"].value("running", true); },
      [](const json& b) {
        const json& s = b["scrub"];
        if (!s.is_object()) return std::string("scrubbing ...");
        double head = s.value("head", 0.0);
        return "scrubbing the log " +
               bar(head > 0 ? s.value("checked", 0.0) / head : 0.0, 30) + " " +
               num(s.value("checked", json(0))) + "/" + num(s.value("head", json(0)));
      },
      code);
  if (!result) return code;
  const json& scrub = (*result)["scrub"];
  if (o.as_json) {
    std::cout << scrub.dump() << "\n";
  } else {
    std::cout << "log scrub: " << num(scrub.value("checked", json(0))) << " records up to offset "
              << num(scrub.value("head", json(0))) << ": "
              << (scrub.value("ok", false) ? "ok" : "PROBLEMS") << " ("
              << num(scrub.value("duration_ms", json(0))) << " ms)\n";
    if (scrub.contains("error")) std::cout << "  error: " << scrub.value("error", "") << "\n";
    for (const auto& p : scrub["problems"])
      std::cout << "  offset " << num(p.value("offset", json(0))) << ": " << p.value("error", "")
                << "\n";
  }
  return scrub.value("ok", false) ? ok : check_failed;
}

// One line of `forget`'s progress from GET /v1/views: the erasure first
// redacts the log, then builds a new copy of every served view beside it
// (versions with role "building"; a version not served is rebuilt in place:
// status "rebuilding"), cuts over to them, retires the old copies and scrubs
// free pages (docs/storage.md, "Erasure"). The bar is the share of their
// sources that the copies being built have applied.
struct forget_progress {
  bool saw_rebuild = false;
  std::string line(const json& views, double seconds) {
    double done = 0, total = 0;
    std::vector<std::string> names;
    auto count = [&](const json& v, const std::string& name) {
      const double offset = v.value("offset", 0.0);
      done += offset;
      total += offset + v.value("lag", 0.0);
      names.push_back(name);
    };
    for (const auto& v : views["views"]) {
      const std::string name = v.value("name", "?");
      if (v.value("status", "") == "rebuilding") count(v, name);
      for (const auto& ver : v.value("versions", json::array())) {
        if (ver.value("role", "") != "building") continue;
        count(ver, name + " " + version_name(ver));
      }
    }
    std::ostringstream out;
    out << "forgetting (" << static_cast<long>(seconds) << " s): ";
    if (!names.empty()) {
      saw_rebuild = true;
      out << "rebuilding " << bar(total > 0 ? done / total : 0, 20) << " ";
      for (size_t i = 0; i < names.size(); ++i) out << (i ? ", " : "") << names[i];
    } else {
      out << (saw_rebuild ? "cutting over, scrubbing free pages ..." : "redacting the log ...");
    }
    return out.str();
  }
};

int cmd_forget(const options& o, const http_client& http) {
  if (o.args.size() != 1) return fail_usage("forget takes one SUBJECT");
  if (o.args[0].empty()) return fail_usage("the SUBJECT is empty (a subject has 1-256 bytes)");
  const std::string target = "/v1/subjects/" + encode_segment(o.args[0]) + "/forget";
  // The route answers once the erasure is done; meanwhile a terminal shows
  // its progress on stderr (stdout keeps the receipt alone).
  const bool tty = isatty(STDERR_FILENO) == 1 && !o.as_json;
  std::optional<http_result> answer;
  std::mutex mu;
  std::condition_variable answered;
  // The route answers when the erasure is done, which may take minutes on a
  // large log: no read timeout unless --timeout is given.
  const http_client poster = o.timeout_given ? http : http.with_timeout(std::chrono::seconds(0));
  std::thread post([&] {
    auto r = poster.request("POST", target);  // once: a forget is never repeated
    std::lock_guard<std::mutex> lock(mu);
    answer = std::move(r);
    answered.notify_one();
  });
  const auto started = std::chrono::steady_clock::now();
  forget_progress progress;
  if (tty) std::cerr << "forgetting " << json(o.args[0]).dump() << " ..." << std::flush;
  std::unique_lock<std::mutex> lock(mu);
  while (!answered.wait_for(lock, std::chrono::milliseconds(200), [&] { return answer.has_value(); })) {
    if (!tty) continue;
    lock.unlock();
    auto views = http.request("GET", "/v1/views");
    auto body = json::parse(views.body, nullptr, false);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (views.connected && views.status == 200 && body.is_object())
      std::cerr << "\r\x1b[K" << progress.line(body, seconds) << std::flush;
    lock.lock();
  }
  lock.unlock();
  post.join();
  if (tty) std::cerr << "\r\x1b[K" << std::flush;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  auto r = std::move(*answer);
  if (r.timed_out)
    return report_error(o, unreachable, "timeout",
                        r.error + " (--timeout): an erasure the server accepted completes "
                                  "there, after a restart too; `derive status` shows its "
                                  "rebuilds and the receipt is in the log (type derive.erasure)");
  if (r.connected && r.status == 404) {
    auto body = json::parse(r.body, nullptr, false);
    // A route that does not exist answers not_found "nothing is served at".
    if (body.is_discarded() || body.dump().find("nothing is served") != std::string::npos)
      return report_error(o, server_error, "not_supported",
                          "this server cannot forget subjects (POST " + target +
                              " is not a route there: an older server)");
  }
  auto a = interpret(o, "POST", target, r);
  if (a.code != ok) return a.code;
  if (tty) {
    std::ostringstream took;
    took.precision(2);
    took << std::fixed << seconds;
    const uint64_t redacted = a.body->value("redacted", uint64_t{0});
    const size_t views = a.body->value("views", json::array()).size();
    std::cerr << "forgotten in " << took.str() << " s: " << redacted
              << (redacted == 1 ? " event" : " events") << " redacted, " << views
              << (views == 1 ? " view" : " views") << " rebuilt; the receipt (offset "
              << num(a.body->value("offset", json(0))) << "):" << std::endl;
  }
  std::cout << (o.as_json ? a.body->dump() : a.body->dump(2)) << "\n";
  return ok;
}

int cmd_verify_forgotten(const options& o) {
  const std::string dir = o.flag("data");
  if (dir.empty() || o.args.empty())
    return fail_usage("verify-forgotten needs --data DIR and at least one STRING");
  auto report = scan_directory(dir, o.args);
  if (!report) return report_error(o, server_error, std::string(to_string(report.error().code())),
                                   report.error().message());
  if (o.as_json) {
    json hits = json::array();
    for (const auto& h : report->hits)
      hits.push_back({{"file", h.file}, {"offset", h.offset}, {"string", h.needle}, {"form", h.form}});
    std::cout << json{{"files", report->files},  {"bytes", report->bytes},
                      {"hits", std::move(hits)}, {"truncated", report->truncated}}
                     .dump()
              << "\n";
  } else {
    for (const auto& h : report->hits)
      std::cout << h.file << ":" << h.offset << ": " << json(h.needle).dump() << " (" << h.form
                << ")\n";
    std::cout << report->files << " files, " << report->bytes << " bytes scanned: "
              << (report->hits.empty() ? "none of the strings found"
                                       : std::to_string(report->hits.size()) + " hits" +
                                             (report->truncated ? " (stopped at the cap)" : ""))
              << "\n";
  }
  return report->hits.empty() ? ok : check_failed;
}

// Flags that take a value; everything else starting with -- is a switch.
bool takes_value(const std::string& name) {
  for (const char* n : {"url", "token", "cacert", "timeout", "interval", "iterations", "from", "type",
                        "prefix", "version", "data"})
    if (name == n) return true;
  return false;
}

std::optional<options> parse(int argc, char** argv, int& code) {
  options o;
  const char* env_url = std::getenv("DERIVE_URL");
  const char* env_token = std::getenv("DERIVE_TOKEN");
  o.url = env_url ? env_url : "http://127.0.0.1:8080";
  o.token = env_token ? env_token : "";
  const char* env_ca = std::getenv("DERIVE_CACERT");
  o.ca_file = env_ca ? env_ca : "";
  for (int i = 1; i < argc; ++i) json_errors = json_errors || std::string(argv[i]) == "--json";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << help_text;
      code = ok;
      return std::nullopt;
    }
    if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string name = a.substr(2), value;
      bool inline_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        inline_value = true;
      }
      if (!takes_value(name)) {
        if (name != "json" && name != "once" && name != "no-wait") {
          code = fail_usage("unknown option --" + name);
          return std::nullopt;
        }
        o.switches[name] = true;
        continue;
      }
      if (!inline_value) {
        if (i + 1 >= argc) {
          code = fail_usage("--" + name + " needs a value");
          return std::nullopt;
        }
        value = argv[++i];
      }
      if (name == "url") o.url = value;
      else if (name == "token") o.token = value;
      else if (name == "cacert") o.ca_file = value;
      else if (name == "timeout") {
        o.timeout_s = std::max(1, std::atoi(value.c_str()));
        o.timeout_given = true;
      }
      else o.flags.emplace(name, value);
      continue;
    }
    if (o.command.empty()) o.command = a;
    else o.args.push_back(a);
  }
  o.as_json = o.has("json");
  if (o.command.empty()) {
    std::cerr << help_text;
    code = usage;
    return std::nullopt;
  }
  return o;
}

int run(int argc, char** argv) {
  int code = ok;
  auto o = parse(argc, argv, code);
  if (!o) return code;
  if (o->command == "verify-forgotten") return cmd_verify_forgotten(*o);
  std::string why;
  auto where = parse_url(o->url, why);
  if (!where) return fail_usage(why);
  http_client http(*where, o->token, std::chrono::seconds(o->timeout_s), o->ca_file);
  const std::string& c = o->command;
  if (c == "status") return cmd_status(*o, http);
  if (c == "watch") return cmd_watch(*o, http);
  if (c == "tail") return cmd_tail(*o, http);
  if (c == "rebuild" || c == "cutover" || c == "rollback") return cmd_version(*o, http);
  if (c == "audit") return cmd_audit(*o, http);
  if (c == "scrub") return cmd_scrub(*o, http);
  if (c == "forget") return cmd_forget(*o, http);
  return fail_usage("unknown command '" + c + "'");
}

}  // namespace
}  // namespace derive::tool

int main(int argc, char** argv) {
  signal(SIGINT, [](int) { derive::tool::interrupted = 1; });
  signal(SIGPIPE, SIG_IGN);
  return derive::tool::run(argc, argv);
}
