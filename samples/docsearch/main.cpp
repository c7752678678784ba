// docsearch: a full-text document search on Derive, with a live browser UI.
//
//   docsearch [--port N] [--address A] [--data DIR] [--threads N] [--relaxed]
//             [--www DIR] [--tls-cert FILE --tls-key FILE] [--allow-host NAME]...
//             [--max-connections-per-address N] [--append-rate N]
//             [--auth-secret-file F | --auth-keys F] [--auth-rules F]
//             [--nats URL[,URL]... [--stream NAME] [--replicas N]] [--help]
//   docsearch import DIR [--url URL] [--batch N] [--token T] [--prefix P] [--subject S]
//             [--no-progress]   (importer.hpp)
//
// Wires the runtime (docsearch's views and validators, docsearch_views.hpp)
// to the HTTP/WebSocket server, seeds a few example documents into an empty
// data directory, and runs until SIGINT or SIGTERM (SIGHUP reloads the TLS
// certificate).


#include <csignal>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <derive/runtime.hpp>
#include <derive/signals.hpp>
#include <derive/web/server.hpp>

#include "docsearch/docsearch_views.hpp"
#include "docsearch/importer.hpp"
#include "common/server_flags.hpp"

#ifndef DOCSEARCH_WWW_DIR
#define DOCSEARCH_WWW_DIR ""
#endif
#ifndef DERIVE_CLIENT_DIR
#define DERIVE_CLIENT_DIR ""
#endif
#ifndef DOCSEARCH_RULES_FILE
#define DOCSEARCH_RULES_FILE ""
#endif

namespace {

constexpr const char* usage_text = R"(Usage: docsearch [options]
       docsearch import DIR [--url URL] [--batch N] [--token T] [--prefix P] [--subject S]
                            [--no-progress]

A full-text document search built on Derive: documents are events in a durable
log, the "documents", "search" and "stats" views are derived from it, and the
web page at / updates live in every open browser window.

Options:
  --port N      TCP port to listen on (default 8080; 0 picks a free port).
                Environment: DERIVE_PORT.
  --address A   the address to listen on (default 127.0.0.1, this machine
                only; 0.0.0.0 or :: for every interface: then name the
                hosts clients use with --allow-host).
  --tls-cert FILE, --tls-key FILE
                serve https and wss on the port with this PEM certificate
                chain and key; SIGHUP reads them again (a bad file keeps the
                old ones). Plain http requests are then refused.
  --allow-host NAME
                accept requests for this host name (repeat for more; "*"
                for any). Default: localhost, 127.0.0.1, [::1] and the
                listening address.
  --max-connections-per-address N
                open connections per client address (default 1000; 0: no
                limit).
  --append-rate N
                appends a second per client address, bursts of 2N (default
                0: no limit); beyond: 429 with Retry-After.
  --data DIR    data directory, created when missing (default ./data).
                Environment: DERIVE_DATA. Running again keeps the data.
  --threads N   network (Asio) threads, 1..64 (default: one per two
                cores, at least one).
  --search-version N
                the search view's version: 2 (default) or 3 (a title boost).
                Switching on a data directory builds the new version beside the
                served one, which keeps answering until the new one is ready
                (GET /v1/views shows its progress); see the README.
  --relaxed     relaxed durability: appends are acknowledged before they are
                synced to disk (a power loss may lose the last ones; a crash
                of the process does not). /v1/health reports it.
  --www DIR     the folder of the web page (default: the source tree's
                samples/docsearch/www).
  --help        show this text and exit.

Cluster mode (off by default; README.md, "Cluster mode"):
  --nats URL[,URL]...   keep the log on a NATS JetStream stream through these
                        servers (nats://host:port); several docsearch nodes on
                        one stream share one log and the same views.
  --stream NAME         the stream (default "docsearch"), created when missing.
  --replicas N          the stream's replicas when it is created, 1..5
                        (default 1; 3 on a 3-server cluster).

Authentication (off by default; README.md, "Auth mode"):
  --auth-secret-file F  turn tokens on: HS256 JWTs signed with the secret in F
                        (its first line).
  --auth-keys F         turn tokens on: RS256/ES256 JWTs verified with the PEM
                        public keys in F (from an identity provider).
  --auth-issuer S, --auth-audience S   required `iss` / `aud` of tokens.
  --auth-rules F        the access rules (default: the source tree's
                        samples/docsearch/auth-rules.json: each user owns
                        users/<sub>/, everyone reads public/).
  In auth mode the example documents are seeded under public/.

Flags win over environment variables. An empty data directory starts with a
few example documents. Stop with Ctrl-C (SIGINT) or SIGTERM.

`docsearch import DIR` loads a folder of text files into a running server
(default http://127.0.0.1:8080) as documents; see `docsearch import --help`.
)";

struct options {
  samples::server_flags server;
  uint32_t search_version = 2;
  std::string address = "127.0.0.1";
  std::string tls_cert;
  std::string tls_key;
  std::vector<std::string> allowed_hosts;
  size_t max_per_address = 1000;
  unsigned long append_rate = 0;
  std::string auth_secret_file;
  std::string auth_keys;
  std::string auth_issuer;
  std::string auth_audience;
  std::string auth_rules = DOCSEARCH_RULES_FILE;
  std::vector<std::string> nats_urls;
  std::string stream = "docsearch";
  int replicas = 1;
  bool auth() const { return !auth_secret_file.empty() || !auth_keys.empty(); }
};

// Takes the current argument when it is one of docsearch's own flags.
samples::taken take_own_flag(samples::command_line& args, options& o) {
  auto text = [&](std::string& into, bool empty_ok) {
    auto v = args.value(empty_ok);
    if (v) into = *v;
    return v ? samples::taken::yes : samples::taken::error;
  };
  if (args.is("--auth-secret-file")) return text(o.auth_secret_file, true);
  if (args.is("--auth-keys")) return text(o.auth_keys, true);
  if (args.is("--auth-issuer")) return text(o.auth_issuer, true);
  if (args.is("--auth-audience")) return text(o.auth_audience, true);
  if (args.is("--auth-rules")) return text(o.auth_rules, true);
  if (args.is("--address")) return text(o.address, false);
  if (args.is("--tls-cert")) return text(o.tls_cert, false);
  if (args.is("--tls-key")) return text(o.tls_key, false);
  if (args.is("--allow-host")) {
    std::string host;
    auto took = text(host, false);
    if (took == samples::taken::yes) o.allowed_hosts.push_back(host);
    return took;
  }
  if (args.is("--nats")) {
    auto v = args.value();
    if (!v) return samples::taken::error;
    for (size_t at = 0; at <= v->size();) {
      size_t comma = std::min(v->find(',', at), v->size());
      if (comma > at) o.nats_urls.push_back(v->substr(at, comma - at));
      at = comma + 1;
    }
    return samples::taken::yes;
  }
  if (args.is("--stream")) return text(o.stream, false);
  if (args.is("--replicas")) {
    auto n = args.number(1, 5);
    if (!n) return samples::taken::error;
    o.replicas = static_cast<int>(*n);
    return samples::taken::yes;
  }
  if (args.is("--search-version")) {
    auto n = args.number(2, 3);
    if (!n) return samples::taken::error;
    o.search_version = static_cast<uint32_t>(*n);
    return samples::taken::yes;
  }
  if (args.is("--max-connections-per-address") || args.is("--append-rate")) {
    bool connections = args.is("--max-connections-per-address");
    auto n = args.number(0, 100000);
    if (!n) return samples::taken::error;
    if (connections) o.max_per_address = *n;
    else o.append_rate = *n;
    return samples::taken::yes;
  }
  return samples::taken::no;
}

// Parses flags and environment; prints the problem and returns nullopt on error.
std::optional<options> parse_options(int argc, char** argv, bool& help) {
  samples::command_line args("docsearch", argc, argv);
  options o;
  o.server.www = DOCSEARCH_WWW_DIR;
  o.server.from_environment("DERIVE_PORT", "DERIVE_DATA");
  while (args.next()) {
    if (args.is_help()) {
      help = true;
      return o;
    }
    auto took = o.server.take(args);
    if (took == samples::taken::no) took = take_own_flag(args, o);
    if (took == samples::taken::error) return std::nullopt;
    if (took == samples::taken::no) {
      args.unknown();
      return std::nullopt;
    }
  }
  if (!o.server.finish(args)) return std::nullopt;
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    args.problem("--tls-cert and --tls-key go together");
    return std::nullopt;
  }
  return o;
}

// The example documents, appended once into an empty log with a fixed
// idempotency key, so that neither a restart nor a retry duplicates them.
nlohmann::json example_documents() {
  auto put = [](const char* id, const char* title, const char* text) {
    return nlohmann::json{{"type", "doc.put"},
                          {"key", id},
                          {"data", {{"title", title}, {"text", text}}}};
  };
  return nlohmann::json::array({
      put("welcome", "Welcome to docsearch",
          "Every change you make here is an event in a durable log. The documents list, "
          "the search index and the statistics are views derived from that log, and every "
          "open browser window sees each change within a moment. Open this page in two "
          "windows and edit a document to see it."),
      put("inside-out", "Turning the database inside out",
          "Instead of one database that does everything, write every change to an "
          "append-only log and let small, independent processes derive the state that "
          "readers need: materialized views, search indexes, caches and statistics."),
      put("event-log", "The event log",
          "The log gives each event an offset: 1, 2, 3 and so on, with no gaps, across "
          "restarts and crashes. A view's state at offset N is a pure function of events "
          "1 to N, so any view can be rebuilt from the log at any time."),
      put("search-index", "How this search works",
          "The search view is derived from the documents view, not from the log. It "
          "splits titles and texts into lower-cased words and keeps, for each word, the "
          "documents that contain it. Results are ranked by tf-idf, with title words "
          "counting twice."),
      put("unicode", "Words in many scripts",
          "Words are runs of Unicode letters and digits: café, naïve, Ελληνικά, "
          "Русский, עברית, 日本語 and 한국어 are all words, and the search ignores case."),
      put("read-your-writes", "Read your own writes",
          "An append returns the offset of its event. Reading with after=offset waits "
          "until the view has applied it, so a page that just saved a document always "
          "finds it."),
  });
}

// `prefix`: put before every id ("public/" in auth mode).
void seed_examples(derive::runtime& rt, const std::string& prefix) {
  if (rt.head() != 0) return;
  derive::append_request request;
  request.idempotency_key = "docsearch-examples-v1";
  for (const auto& e : example_documents()) {
    request.events.push_back({e.at("type").get<std::string>(), prefix + e.value("key", ""), "",
                              e.at("data").dump()});
  }
  std::promise<derive::status> done;
  rt.append(std::move(request), [&done](derive::result<derive::append_outcome> r) {
    done.set_value(r ? derive::status::ok() : r.error());
  });
  if (auto st = done.get_future().get(); !st) {
    std::cerr << "docsearch: could not add the example documents: " << st.to_string() << "\n";
  }
}

// The server's auth options from the --auth-* flags.
derive::result<derive::web::auth_options> auth_options(const options& o) {
  derive::web::auth_options auth;
  if (!o.auth_secret_file.empty()) {
    std::ifstream in(o.auth_secret_file, std::ios::binary);
    if (!in || !std::getline(in, auth.tokens.hs256_secret) || auth.tokens.hs256_secret.empty()) {
      return derive::status{derive::errc::invalid_parameter,
                            "cannot read a secret from the first line of " + o.auth_secret_file};
    }
  }
  auth.tokens.public_keys_file = o.auth_keys;
  auth.tokens.issuer = o.auth_issuer;
  auth.tokens.audience = o.auth_audience;
  auto rules = derive::web::access_rules::from_file(o.auth_rules);
  if (!rules) return rules.error();
  auth.rules = std::move(*rules);
  return auth;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "import") {
    return docsearch::import_main(argc - 2, argv + 2);
  }
  bool help = false;
  auto opts = parse_options(argc, argv, help);
  if (help) {
    std::cout << usage_text;
    return 0;
  }
  if (!opts) return 2;

  // Ctrl-C and SIGTERM wake signals.wait(); the server stops before the
  // runtime. SIGHUP wakes it too, to reload the TLS certificate.
  derive::stop_signals signals(true);

  auto data = opts->server.data_path();
  auto rt_options = opts->server.runtime_options();
  rt_options.cluster.nats_urls = opts->nats_urls;
  rt_options.cluster.stream = opts->stream;
  rt_options.cluster.replicas = opts->replicas;
  derive::runtime rt(rt_options);
  docsearch::install(rt, opts->search_version);
  if (auto st = rt.start(); !st) {
    std::cerr << "docsearch: cannot start: " << st.to_string() << "\n";
    return 1;
  }
  seed_examples(rt, opts->auth() ? "public/" : "");

  auto srv_options = opts->server.server_options(DERIVE_CLIENT_DIR);
  srv_options.address = opts->address;
  srv_options.tls_cert_file = opts->tls_cert;
  srv_options.tls_key_file = opts->tls_key;
  srv_options.allowed_hosts = opts->allowed_hosts;
  srv_options.max_connections_per_address = opts->max_per_address;
  srv_options.append_rate = static_cast<double>(opts->append_rate);
  srv_options.append_burst = 2.0 * static_cast<double>(opts->append_rate);
  if (opts->auth()) {
    auto auth = auth_options(*opts);
    if (!auth) {
      std::cerr << "docsearch: " << auth.error().message() << "\n";
      rt.stop();
      return 2;
    }
    srv_options.auth = std::move(*auth);
  }
  derive::web::server srv(rt, srv_options);
  std::string host = opts->address.find(':') != std::string::npos ? "[" + opts->address + "]"
                                                                   : opts->address;
  if (auto st = srv.start(); !st) {
    std::cerr << "docsearch: cannot listen on " << host << ":" << opts->server.port << ": "
              << st.to_string() << "\n";
    rt.stop();
    return 1;
  }
  std::cout << "Derive docsearch listening on " << (opts->tls_cert.empty() ? "http" : "https")
            << "://" << host << ":" << srv.port() << "/\n"
            << "data directory: " << data
            << (opts->server.relaxed ? " (relaxed durability)" : "") << "\n"
            << (opts->auth() ? "tokens required, rules from " + opts->auth_rules + "\n" : "")
            << "Press Ctrl-C to stop." << std::endl;

  while (signals.wait() == SIGHUP) {
    if (opts->tls_cert.empty()) continue;
    auto st = srv.reload_tls();
    std::cout << "docsearch: "
              << (st ? "TLS certificate reloaded" : "TLS reload failed, the old certificate stays: " + st.to_string())
              << std::endl;
  }
  std::cout << "docsearch: stopping" << std::endl;
  srv.stop();
  rt.stop();
  return 0;
}
