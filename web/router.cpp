#include "web/router.hpp"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "core/append_check.hpp"
#include "core/json_text.hpp"
#include "web/admin_versions.hpp"
#include "web/admin.hpp"
#include "web/errors.hpp"
#include "web/metrics.hpp"
#include "web/static_files.hpp"
#include "web/url.hpp"
#include "web/ws_protocol.hpp"

namespace derive::web {
namespace {

constexpr uint64_t default_limit = 100;
constexpr uint64_t max_limit = 10000;
constexpr std::string_view get_methods = "GET, HEAD";

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_json_media_type(const std::optional<std::string>& content_type) {
  if (!content_type) return false;
  std::string_view t = *content_type;
  return lower(trim(t.substr(0, t.find(';')))) == "application/json";
}

http_reply json_reply(unsigned status, std::string body) {
  http_reply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

http_reply method_not_allowed(std::string_view method, std::string_view allow) {
  auto r = error_reply(405, http_code::method_not_allowed,
                       "method " + std::string(method) + " is not allowed here; use " +
                           std::string(allow));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

http_reply route_not_found(std::string_view path) {
  return error_reply(404, http_code::not_found,
                     "nothing is served at " + std::string(path) + "; see docs/protocol.md");
}

// `after` and `timeout_ms` of a read (protocol.md, "after=").
struct wait_params {
  std::optional<uint64_t> after;
  std::chrono::milliseconds timeout{default_wait_ms};
};

result<wait_params> parse_wait(const query_map& q) {
  wait_params w;
  if (q.count("after")) {
    auto a = uint_param(q, "after", 0, 0, UINT64_MAX);
    if (!a) return a.error();
    w.after = *a;
  }
  auto t = uint_param(q, "timeout_ms", default_wait_ms, 0, max_wait_ms);
  if (!t) return t.error();
  w.timeout = std::chrono::milliseconds(*t);
  return w;
}

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Splits "a/b/c" at the first '/': ("a", "b/c"); no '/': ("a", nullopt).
std::pair<std::string_view, std::optional<std::string_view>> split_first(std::string_view s) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return {s, std::nullopt};
  return {s.substr(0, slash), s.substr(slash + 1)};
}

bool is_loopback_name(std::string_view host) {
  return host == "localhost" || host == "127.0.0.1" || host == "[::1]";
}

// Routes that read or write application data or are admin endpoints: with
// authentication on, their requests are authenticated and checked.
bool needs_auth(std::string_view path) {
  return path == "/v1/events" || path == "/v1/views" || starts_with(path, "/v1/views/") ||
         starts_with(path, "/v1/query/") || path == "/metrics" ||
         starts_with(path, "/v1/admin/") || starts_with(path, "/v1/subjects/");
}

// The subprotocol entry that carries a token (browsers cannot set headers).
constexpr std::string_view token_protocol = "derive.token.";
constexpr std::string_view main_protocol = "derive.v1";

}  // namespace

http_reply denial_reply(const denial& d, bool token_sent) {
  if (!d.unauthenticated) return error_reply(403, http_code::forbidden, d.message);
  auto r = error_reply(401, http_code::unauthorized, d.message);
  r.headers.emplace_back("WWW-Authenticate", token_sent
                                                 ? "Bearer realm=\"derive\", error=\"invalid_token\""
                                                 : "Bearer realm=\"derive\"");
  return r;
}

http_reply error_reply(const status& st) {
  return json_reply(http_status_for(st.code()), error_body(st));
}

http_reply error_reply(unsigned status, std::string_view code, std::string_view message) {
  return json_reply(status, error_body(code, message));
}

result<key_read> read_key(const runtime& rt, const std::string& view, std::string_view key) {
  auto snap = rt.snapshot(view);
  if (!snap) return snap.error();
  auto v = snap->get(key);
  if (!v) return v.error();
  return key_read{std::move(*v), snap->offset()};
}

bool raw_idempotency_key_is_malformed(std::string_view header) {
  header = header.substr(0, header.find("\r\n\r\n"));
  while (!header.empty()) {
    auto nl = header.find('\n');
    std::string_view line = header.substr(0, nl);
    header = nl == std::string_view::npos ? std::string_view{} : header.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    if (lower(trim(line.substr(0, colon))) != "idempotency-key") continue;
    for (unsigned char c : line.substr(colon + 1)) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
    }
  }
  return false;
}

bool origin_allowed(std::string_view origin, std::string_view host,
                    const std::vector<std::string>& allowed) {
  auto o = parse_origin(origin);
  if (!allowed.empty()) {
    std::string text = lower(trim(origin));
    while (!text.empty() && text.back() == '/') text.pop_back();
    for (const auto& a : allowed) {
      std::string al = lower(a);
      while (!al.empty() && al.back() == '/') al.pop_back();
      if (al == "*" || (o && al == text)) return true;
    }
    return false;
  }
  if (!o) return false;  // "null", file:, userinfo, garbage
  if (is_loopback_name(o->where.host)) return true;
  // The server's own origin: the Host the browser connected to (checked
  // against the Host allow-list before).
  auto h = parse_host_header(host);
  if (!h) return false;
  std::string default_port = o->scheme == "https" ? "443" : "80";
  auto oport = o->where.port.empty() ? default_port : o->where.port;
  auto hport = h->port.empty() ? default_port : h->port;
  return o->where.host == h->host && oport == hport;
}

bool host_allowed(std::string_view host, const std::vector<std::string>& allowed,
                  std::string_view bound_address) {
  auto h = parse_host_header(host);
  if (!h) return false;
  if (allowed.empty()) {
    if (is_loopback_name(h->host)) return true;
    std::string bound = lower(bound_address);
    if (bound.find(':') != std::string::npos) bound = "[" + bound + "]";
    return bound != "0.0.0.0" && bound != "[::]" && h->host == bound;
  }
  for (const auto& a : allowed) {
    if (a == "*" || lower(a) == h->host) return true;
  }
  return false;
}

router::router(runtime& rt, const server_options& options, metrics& stats,
               const std::shared_ptr<const authorizer>& auth)
    : rt_(rt),
      options_(options),
      stats_(stats),
      auth_(auth),
      client_dir_(find_client_dir(options.client_dir)),
      limits_(std::make_shared<append_limits>(options.append_rate, options.append_burst,
                                              options.max_new_idempotency_keys,
                                              options.idempotency_key_window)) {}

std::variant<ws_identity, http_reply> router::authenticate_upgrade(
    std::optional<std::string_view> authorization,
    std::optional<std::string_view> protocols) const {
  ws_identity id;
  std::optional<std::string_view> token;
  bool offers_main = false;
  // "derive.v1, derive.token.<jwt>": the entries are separated by commas.
  for (std::string_view rest = protocols.value_or(""); !rest.empty();) {
    auto comma = rest.find(',');
    auto entry = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (entry == main_protocol) offers_main = true;
    if (starts_with(entry, token_protocol)) token = entry.substr(token_protocol.size());
  }
  if (offers_main) id.protocol = std::string(main_protocol);
  if (!auth_) return id;
  if (authorization) {
    auto bearer = bearer_token(*authorization);
    if (!bearer) {
      return denial_reply({true, "the Authorization header must be \"Bearer <token>\""}, true);
    }
    token = bearer;
  }
  auto who = auth_->authenticate(token, unix_now());
  if (auto* d = std::get_if<denial>(&who)) return denial_reply(*d, true);
  id.who = std::get<principal>(std::move(who));
  return id;
}

std::optional<http_reply> router::check_head(const request_head& head) const {
  if (head.host && !host_allowed(*head.host, options_.allowed_hosts, options_.address)) {
    auto r = error_reply(421, http_code::host_not_allowed,
                         "this server does not answer for host " + std::string(*head.host) +
                             "; add it to the allowed hosts");
    r.close = true;
    return r;
  }
  bool may_write = head.method != "GET" && head.method != "HEAD" && head.method != "OPTIONS";
  if (may_write && head.origin &&
      !origin_allowed(*head.origin, head.host.value_or(""), options_.allowed_origins)) {
    auto r = error_reply(403, http_code::forbidden,
                         "requests from origin " + std::string(*head.origin) +
                             " may not change data here");
    r.close = true;
    return r;
  }
  if (head.chunked) {
    auto r = error_reply(411, http_code::length_required,
                         "chunked request bodies are not accepted; send Content-Length");
    r.close = true;
    return r;
  }
  if (head.content_length && *head.content_length > options_.max_body_bytes) {
    auto r = error_reply(413, to_string(errc::payload_too_large),
                         "the request body is larger than the limit of " +
                             std::to_string(options_.max_body_bytes) + " bytes");
    r.close = true;
    return r;
  }
  if (head.method == "POST" && !head.content_length &&
      split_target(head.target).path == "/v1/events") {
    auto r = error_reply(411, http_code::length_required,
                         "a request with a body must carry Content-Length");
    r.close = true;
    return r;
  }
  return std::nullopt;
}

std::optional<http_reply> router::check_upgrade(std::string_view target,
                                                std::optional<std::string_view> origin,
                                                std::string_view host) const {
  auto path = split_target(target).path;
  if (path != "/v1/ws") return route_not_found(path);
  if (origin && !origin_allowed(*origin, host, options_.allowed_origins)) {
    return error_reply(403, http_code::forbidden,
                       "WebSocket connections from origin " + std::string(*origin) +
                           " are not allowed");
  }
  return std::nullopt;
}

void router::handle(http_request req, reply_fn reply, post_fn post) {
  auto parts = split_target(req.target);
  std::string_view path = parts.path;
  bool is_get = req.method == "GET" || req.method == "HEAD";

  principal who;
  if (auth_ && needs_auth(path)) {
    std::optional<std::string_view> token;
    if (req.authorization) {
      token = bearer_token(*req.authorization);
      if (!token) {
        return reply(denial_reply(
            {true, "the Authorization header must be \"Bearer <token>\""}, true));
      }
    }
    auto id = auth_->authenticate(token, unix_now());
    if (auto* d = std::get_if<denial>(&id)) return reply(denial_reply(*d, true));
    who = std::get<principal>(std::move(id));
  }
  // Admin endpoints: the whole log, the views' list, the metrics.
  auto admin_refusal = [&]() -> std::optional<http_reply> {
    if (!auth_) return std::nullopt;
    if (auto v = auth_->admin(who)) return denial_reply(*v, false);
    return std::nullopt;
  };

  if (path == "/v1/events") {
    if (req.method == "POST") return append(req, who, std::move(reply), std::move(post));
    if (!is_get) return reply(method_not_allowed(req.method, "GET, HEAD, POST"));
    if (auto r = admin_refusal()) return reply(std::move(*r));
    return reply(read_events(parts.query));
  }
  // Admin routes (docs/protocol.md, "Admin"): the admin scope, or without
  // authentication a loopback peer. Forgetting a subject is one of them.
  if (starts_with(path, "/v1/admin/") || starts_with(path, "/v1/subjects/")) {
    if (auto r = admin_refusal()) return reply(std::move(*r));
    if (!auth_ && !is_loopback_address(req.remote_address))
      return reply(error_reply(403, http_code::forbidden,
                               "the admin routes answer loopback peers only while authentication "
                               "is off; configure it (docs/security.md) and send a token that "
                               "the admin rule allows"));
    if (starts_with(path, "/v1/subjects/"))
      return forget_route(req, path, std::move(reply), std::move(post));
    if (auto r = version_admin(rt_, req.method, path, parts.query)) return reply(std::move(*r));
    if (auto r = audit_route(rt_, req.method, path)) return reply(std::move(*r));
    return reply(route_not_found(path));
  }
  bool known_get_route = path == "/v1/views" || starts_with(path, "/v1/views/") ||
                         starts_with(path, "/v1/query/") || path == "/v1/health" ||
                         path == "/metrics" || path == "/v1/ws";
  bool v1 = path == "/v1" || starts_with(path, "/v1/");
  if (known_get_route && !is_get) return reply(method_not_allowed(req.method, get_methods));
  if (v1 && !known_get_route) return reply(route_not_found(path));
  if (path == "/v1/views" || path == "/metrics") {
    if (auto r = admin_refusal()) return reply(std::move(*r));
    return reply(path == "/metrics" ? metrics_text() : list_views());
  }
  if (path == "/v1/health") return reply(health());
  if (path == "/v1/ws") {
    return reply(error_reply(426, http_code::upgrade_required,
                             "/v1/ws is a WebSocket endpoint; send a WebSocket upgrade"));
  }

  if (starts_with(path, "/v1/views/") || starts_with(path, "/v1/query/")) {
    return read_route(parts.path, parts.query, who, std::move(reply), std::move(post));
  }

  auto file = starts_with(path, "/client/") ? static_reply(client_dir_, path.substr(7))
                                             : static_reply(options_.static_dir, path);
  // Another method on a path that serves nothing is answered like GET (404,
  // or 400 for a bad encoding); on a file that exists it is 405.
  if (!is_get && file.status == 200) return reply(method_not_allowed(req.method, get_methods));
  return reply(std::move(file));
}

// POST /v1/subjects/{subject}/forget (protocol.md, "Admin"): answers with
// the erasure receipt once the subject is forgotten.
void router::forget_route(const http_request& req, std::string_view path, reply_fn reply,
                          post_fn post) {
  constexpr std::string_view prefix = "/v1/subjects/", suffix = "/forget";
  auto rest = path.substr(prefix.size());
  if (rest.size() < suffix.size() || rest.substr(rest.size() - suffix.size()) != suffix ||
      rest.substr(0, rest.size() - suffix.size()).find('/') != std::string_view::npos)
    return reply(route_not_found(path));
  if (req.method != "POST") return reply(method_not_allowed(req.method, "POST"));
  if (rest == suffix)
    return reply(error_reply(400, to_string(errc::invalid_parameter),
                             "the subject is empty: POST /v1/subjects/{subject}/forget takes "
                             "a subject of 1-256 bytes, percent-encoded"));
  auto subject = percent_decode(rest.substr(0, rest.size() - suffix.size()), false);
  if (!subject)
    return reply(error_reply(400, to_string(errc::invalid_parameter),
                             "the path has a bad percent-encoding"));
  rt_.forget(std::move(*subject), [post = std::move(post), reply = std::move(reply)](
                                      result<erasure_receipt> r) {
    post([r = std::move(r), reply] {
      reply(r ? json_reply(200, r->to_json()) : error_reply(r.error()));
    });
  });
}

// GET /v1/views/{view}, /v1/views/{view}/{key}, /v1/query/{view}/{name}.
void router::read_route(std::string_view path, std::string_view query_text,
                        const principal& who, reply_fn reply, post_fn post) {
  bool is_query = starts_with(path, "/v1/query/");
  auto [raw_view, raw_rest] = split_first(path.substr(10));  // both prefixes are 10 long
  auto query = parse_query(query_text);
  if (!query) return reply(error_reply(query.error()));
  auto wait = parse_wait(*query);
  if (!wait) return reply(error_reply(wait.error()));
  auto view = percent_decode(raw_view, false);
  auto rest = raw_rest ? percent_decode(*raw_rest, false) : std::optional<std::string>("");
  if (!view || !rest) {
    return reply(error_reply(400, to_string(errc::invalid_parameter),
                             "the path has a bad percent-encoding"));
  }
  std::function<http_reply()> read;
  if (is_query) {
    if (!raw_rest || raw_rest->find('/') != std::string_view::npos) {
      return reply(route_not_found(path));
    }
    query_params params(query->begin(), query->end());
    params.erase("after");
    params.erase("timeout_ms");
    if (auth_) {
      if (auto v = auth_->query(who, *view, *rest, params)) return reply(denial_reply(*v, false));
    }
    read = [this, v = *view, name = *rest, params] { return query_reply(v, name, params); };
  } else if (raw_rest) {
    if (auth_) {
      if (auto v = auth_->read_key(who, *view, *rest)) return reply(denial_reply(*v, false));
    }
    read = [this, v = *view, k = *rest] { return key_reply(v, k); };
  } else {
    auto limit = uint_param(*query, "limit", default_limit, 1, max_limit);
    if (!limit) return reply(error_reply(limit.error()));
    std::string prefix = query->count("prefix") ? query->at("prefix") : "";
    std::string start = query->count("start") ? query->at("start") : "";
    if (auth_) {
      if (auto v = auth_->read_prefix(who, *view, prefix)) return reply(denial_reply(*v, false));
    }
    read = [this, v = *view, prefix, start, l = *limit] {
      return range_reply(v, prefix, start, l);
    };
  }
  after_then(*view, wait->after, wait->timeout, std::move(reply), std::move(post),
             std::move(read));
}

void router::after_then(const std::string& view, std::optional<uint64_t> after,
                        std::chrono::milliseconds timeout, reply_fn reply, post_fn post,
                        std::function<http_reply()> read) {
  if (!after) return reply(read());
  rt_.wait_for(view, *after, timeout,
               [post = std::move(post), reply = std::move(reply),
                read = std::move(read)](status st) {
                 // A runtime thread: hop to the session's strand before reading.
                 post([st = std::move(st), reply, read] {
                   reply(st ? read() : error_reply(st));
                 });
               });
}

void router::append(http_request& req, const principal& who, reply_fn reply, post_fn post) {
  if (!is_json_media_type(req.content_type)) {
    return reply(error_reply(415, http_code::unsupported_media_type,
                             "send the events with Content-Type: application/json"));
  }
  bool with_key = req.idempotency_key.has_value();
  auto client = client_key(who, req.remote_address);
  if (auto refused = limits_->admit(client, with_key)) {
    stats_.appends_limited.fetch_add(1);
    auto r = error_reply(429, refused->code, refused->message);
    r.headers.emplace_back("Retry-After", std::to_string(refused->retry_after_seconds()));
    return reply(std::move(r));
  }
  auto parsed = parse_append(req.body, req.idempotency_key);
  if (!parsed) {
    if (with_key) limits_->settle(client, false);
    return reply(error_reply(parsed.error()));
  }
  if (auth_) {
    if (auto v = auth_->append(who, parsed->request.events())) {
      if (with_key) limits_->settle(client, false);
      return reply(denial_reply(*v, false));
    }
  }
  bool was_array = parsed->was_array;
  rt_.append(std::move(parsed->request), [limits = limits_, was_array, with_key, client,
                                          post = std::move(post),
                                          reply = std::move(reply)](result<append_outcome> res) {
    if (with_key) limits->settle(client, res && !res->replayed);
    post([res = std::move(res), was_array, reply] {
      if (!res) return reply(error_reply(res.error()));
      std::string body;
      if (was_array) {
        body = "{\"offsets\":[";
        for (uint64_t i = 0; i < res->count; ++i) {
          if (i) body += ',';
          append_uint(body, res->first_offset + i);
        }
        body += "]}";
      } else {
        body = "{\"offset\":";
        append_uint(body, res->first_offset);
        body += '}';
      }
      http_reply r = json_reply(res->replayed ? 200 : 201, std::move(body));
      if (res->replayed) r.headers.emplace_back("Idempotent-Replayed", "true");
      reply(std::move(r));
    });
  });
}

http_reply router::read_events(std::string_view query_text) const {
  auto query = parse_query(query_text);
  if (!query) return error_reply(query.error());
  auto from = uint_param(*query, "from", 1, 0, UINT64_MAX);
  if (!from) return error_reply(from.error());
  auto limit = uint_param(*query, "limit", default_limit, 1, max_limit);
  if (!limit) return error_reply(limit.error());
  uint64_t first = std::max<uint64_t>(*from, 1);
  // At most `limit` events and max_response_bytes of them (at least one):
  // read in pages sized from the events seen so far, so that large events
  // are not all read before the cap is reached.
  const size_t max_bytes = std::max<size_t>(options_.max_response_bytes, 1);
  std::string body = "{\"events\":[";
  uint64_t next = first;
  uint64_t last = 0;  // the last returned offset (0: none)
  size_t count = 0;
  size_t avg = 0;
  bool full = false;
  while (!full && count < *limit) {
    size_t want = *limit - count;
    want = avg ? std::min(want, (max_bytes - std::min(max_bytes, body.size())) / avg + 1)
               : std::min<size_t>(want, 16);
    auto events = rt_.read_log(next, want);
    if (!events) return error_reply(events.error());
    size_t page_bytes = 0;
    for (auto& e : *events) {
      std::string json = e.to_json();
      if (count > 0 && body.size() + json.size() + 1 > max_bytes) {
        full = true;
        break;
      }
      if (count) body += ',';
      body += json;
      page_bytes += json.size();
      ++count;
      last = e.offset;
      next = last + 1;
    }
    if (!events->empty()) avg = std::max<size_t>(page_bytes / events->size(), 1);
    if (events->size() < want) break;  // the end of the log
  }
  uint64_t head = rt_.head();  // after the read: head >= every returned offset
  body += "],\"next\":";
  append_uint(body, next);
  // `head` is the last offset appended, never derived from `from`: a read
  // past the end must not report a head it did not see.
  body += ",\"head\":";
  append_uint(body, std::max(head, last));
  body += '}';
  return json_reply(200, std::move(body));
}

http_reply router::list_views() const {
  nlohmann::json views = nlohmann::json::array();
  for (const auto& v : rt_.views()) {
    nlohmann::json j = {{"name", v.name},     {"version", v.version},
                        {"offset", v.offset}, {"lag", v.lag},
                        {"status", std::string(to_string(v.status))}};
    if (v.status == view_status::failed) j["error"] = v.error;
    nlohmann::json versions = nlohmann::json::array();
    for (const auto& ver : v.versions) {
      nlohmann::json e = {{"version", ver.version},
                          {"generation", ver.generation},
                          {"role", std::string(to_string(ver.role))},
                          {"offset", ver.offset},
                          {"lag", ver.lag},
                          {"events_per_second", ver.events_per_second},
                          {"eta_seconds", nullptr}};
      if (ver.eta_seconds) e["eta_seconds"] = *ver.eta_seconds;
      if (!ver.upstream.empty()) e["upstream"] = ver.upstream;
      if (ver.role != version_role::retired) e["status"] = std::string(to_string(ver.status));
      if (ver.pinned) e["pinned"] = true;
      versions.push_back(std::move(e));
    }
    j["versions"] = std::move(versions);
    j["pinned"] = v.pinned ? nlohmann::json(*v.pinned) : nlohmann::json(nullptr);
    j["audit"] = v.audit ? audit_json(*v.audit) : nlohmann::json(nullptr);
    views.push_back(std::move(j));
  }
  return json_reply(200, dump({{"views", std::move(views)}}));
}

http_reply router::health() const {
  uint64_t head = rt_.head();
  bool degraded = false;
  nlohmann::json views = nlohmann::json::object();
  for (const auto& v : rt_.views()) {
    degraded = degraded || v.status == view_status::failed;
    views[v.name] = {{"status", std::string(to_string(v.status))},
                     {"offset", v.offset},
                     {"lag", v.lag}};
  }
  nlohmann::json body = {
      {"status", degraded ? "degraded" : "ok"},
      {"head", head},
      {"durability", rt_.durability_mode() == durability::full ? "full" : "relaxed"},
      {"views", std::move(views)}};
  if (auto c = rt_.cluster()) {
    // Cluster mode: not ready while this node cannot follow or reach the stream.
    const bool ready = c->reachable && c->error.empty();
    if (!ready) body["status"] = "degraded";
    body["cluster"] = {{"stream", c->stream},
                       {"ready", ready},
                       {"reachable", c->reachable},
                       {"server", c->server},
                       {"stream_first_seq", c->stream_first_seq},
                       {"stream_last_seq", c->stream_last_seq},
                       {"ingested_seq", c->ingested_seq},
                       {"lag", c->lag},
                       {"error", c->error.empty() ? nlohmann::json() : nlohmann::json(c->error)}};
  }
  if (auto r = rt_.retention()) {
    nlohmann::json rules = nlohmann::json::array();
    for (const auto& rule : r->rules)
      rules.push_back({{"pattern", rule.pattern},
                       {"keep_ms", rule.keep_ms},
                       {"through", rule.through},
                       {"expired", rule.expired}});
    body["retention"] = {{"sweeps", r->sweeps},
                         {"expired", r->expired},
                         {"last_sweep_ms", r->last_sweep_ms},
                         {"last_sweep_head", r->last_sweep_head},
                         {"rules", std::move(rules)}};
  }
  return json_reply(200, dump(body));
}

http_reply router::metrics_text() const {
  http_reply r;
  r.body = stats_.render(rt_);
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  return r;
}

http_reply router::key_reply(const std::string& view, const std::string& key) const {
  auto read = read_key(rt_, view, key);
  if (!read) return error_reply(read.error());
  std::string body;
  if (!read->value) {
    body = "{\"error\":{\"code\":\"not_found\",\"message\":";
    append_json_string(body, "view " + view + " has no value for this key");
    body += "},\"offset\":";
    append_uint(body, read->offset);
    body += '}';
    return json_reply(404, std::move(body));
  }
  body = "{\"key\":";
  append_json_string(body, key);
  body += ",\"value\":";
  body += *read->value;
  body += ",\"offset\":";
  append_uint(body, read->offset);
  body += '}';
  return json_reply(200, std::move(body));
}

http_reply router::range_reply(const std::string& view, const std::string& prefix,
                               const std::string& start, uint64_t limit) const {
  auto snap = rt_.snapshot(view);
  if (!snap) return error_reply(snap.error());
  // At most `limit` items and max_response_bytes of them (at least one),
  // read in pages from one snapshot; `next` is the first key not returned.
  const size_t max_bytes = std::max<size_t>(options_.max_response_bytes, 1);
  std::string body = "{\"items\":[";
  std::optional<std::string> next = start;
  size_t count = 0;
  size_t avg = 0;
  while (next && count < limit) {
    size_t want = limit - count;
    want = avg ? std::min(want, (max_bytes - std::min(max_bytes, body.size())) / avg + 1)
               : std::min<size_t>(want, 64);
    auto page = snap->range(prefix, *next, want);
    if (!page) return error_reply(page.error());
    next = std::move(page->next);
    size_t page_bytes = 0;
    size_t used = 0;
    for (auto& kv : page->items) {
      std::string item = "{\"key\":";
      append_json_string(item, kv.key);
      item += ",\"value\":";
      item += kv.value;
      item += '}';
      if (count > 0 && body.size() + item.size() + 1 > max_bytes) {
        next = kv.key;
        break;
      }
      if (count) body += ',';
      body += item;
      page_bytes += item.size();
      ++count;
      ++used;
    }
    if (used > 0) avg = std::max<size_t>(page_bytes / used, 1);
    if (used < page->items.size()) break;  // full
  }
  body += "],\"offset\":";
  append_uint(body, snap->offset());
  body += ",\"next\":";
  if (next) append_json_string(body, *next);
  else body += "null";
  body += '}';
  return json_reply(200, std::move(body));
}

http_reply router::query_reply(const std::string& view, const std::string& name,
                               const query_params& params) const {
  try {
    auto res = rt_.query(view, name, params);
    if (!res) return error_reply(res.error());
    return json_reply(200, dump(*res));
  } catch (const std::exception& e) {
    return error_reply(500, "internal_error",
                       "query " + name + " of view " + view + " failed: " + e.what());
  }
}

http_reply router::static_reply(const std::string& root, std::string_view path) const {
  auto found = lookup_static(root, path);
  if (found.result == static_lookup::bad_encoding) {
    return error_reply(400, to_string(errc::invalid_parameter),
                       "the path has a bad percent-encoding");
  }
  if (found.result != static_lookup::found) return route_not_found(path);
  http_reply r;
  r.file = std::move(found.path);
  r.content_type = std::move(found.content_type);
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

}  // namespace derive::web
