#include "web/access_rules.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace derive::web {
namespace {

using nlohmann::json;
using action = access_rule::action;

status invalid(std::string message) { return {errc::invalid_parameter, std::move(message)}; }

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Checks that every '{' of a template closes with a '}' around a claim name.
status check_template(const std::string& t, const std::string& where) {
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '}') return invalid(where + ": '}' without '{' in \"" + t + "\"");
    if (t[i] != '{') continue;
    auto close = t.find('}', i);
    if (close == std::string::npos || close == i + 1 ||
        t.find('{', i + 1) < close) {
      return invalid(where + ": write a claim as {name} in \"" + t + "\"");
    }
    i = close;
  }
  return {};
}

// `t` with each {claim} replaced by the token's claim; nullopt when a claim
// is missing, empty or holds '/' (it could reach into another user's keys),
// or when the template names a claim and there is no token.
std::optional<std::string> substitute(const std::string& t, const principal& who) {
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] != '{') {
      out += t[i];
      continue;
    }
    auto close = t.find('}', i);
    std::string name = t.substr(i + 1, close - i - 1);
    if (!who.token) return std::nullopt;
    auto it = who.token->strings.find(name);
    if (it == who.token->strings.end() || it->second.empty() ||
        it->second.find('/') != std::string::npos) {
      return std::nullopt;
    }
    out += it->second;
    i = close;
  }
  return out;
}

bool applies_to(const access_rule& r, const principal& who) {
  if (r.who == "anyone") return true;
  if (r.who == "anonymous") return who.anonymous();
  if (r.who == "user") return !who.anonymous();
  if (starts_with(r.who, "scope:")) {
    return who.token && who.token->scopes.count(r.who.substr(6)) > 0;
  }
  return false;
}

bool name_matches(const std::string& pattern, const std::string& name) {
  if (pattern == "*") return true;
  if (!pattern.empty() && pattern.back() == '*') {
    return starts_with(name, std::string_view(pattern).substr(0, pattern.size() - 1));
  }
  return pattern == name;
}

bool type_allowed(const access_rule& r, const std::string& type) {
  return std::any_of(r.types.begin(), r.types.end(),
                     [&](const std::string& p) { return name_matches(p, type); });
}

status check_rule(const access_rule& r, const std::string& where) {
  if (r.who != "anyone" && r.who != "anonymous" && r.who != "user" &&
      !(starts_with(r.who, "scope:") && r.who.size() > 6)) {
    return invalid(where + ": \"who\" must be anyone, anonymous, user or scope:<name>, not \"" +
                   r.who + "\"");
  }
  if (auto st = check_template(r.prefix, where + ".prefix"); !st) return st;
  if (r.subject) {
    if (auto st = check_template(*r.subject, where + ".subject"); !st) return st;
  }
  for (const auto& [name, value] : r.params) {
    if (auto st = check_template(value, where + ".params." + name); !st) return st;
  }
  if (r.what == action::append && r.types.empty()) {
    return invalid(where + ": \"types\" must name at least one event type (\"*\": any)");
  }
  return {};
}

result<access_rule> rule_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) return invalid(where + " must be an object");
  access_rule r;
  auto str = [&](const char* name, std::string& out) -> status {
    auto it = j.find(name);
    if (it == j.end()) return {};
    if (!it->is_string()) return invalid(where + "." + name + " must be a string");
    out = it->get<std::string>();
    return {};
  };
  std::string allow;
  if (auto st = str("allow", allow); !st) return st;
  if (allow == "read") r.what = action::read;
  else if (allow == "append") r.what = action::append;
  else if (allow == "query") r.what = action::query;
  else if (allow == "admin") r.what = action::admin;
  else return invalid(where + ".allow must be read, append, query or admin");
  static const char* known[] = {"allow",   "who",   "view",  "prefix",
                                "types",   "subject", "query", "params"};
  for (auto& [name, v] : j.items()) {
    if (std::find(std::begin(known), std::end(known), name) == std::end(known)) {
      return invalid(where + ": unknown member \"" + name + "\"");
    }
  }
  for (auto [name, field] : {std::pair{"who", &r.who}, std::pair{"view", &r.view},
                             std::pair{"prefix", &r.prefix}, std::pair{"query", &r.query}}) {
    if (auto st = str(name, *field); !st) return st;
  }
  if (auto it = j.find("subject"); it != j.end()) {
    if (!it->is_string()) return invalid(where + ".subject must be a string");
    r.subject = it->get<std::string>();
  }
  if (auto it = j.find("params"); it != j.end()) {
    if (!it->is_object()) return invalid(where + ".params must be an object of strings");
    for (auto& [name, v] : it->items()) {
      if (!v.is_string()) return invalid(where + ".params." + name + " must be a string");
      r.params[name] = v.get<std::string>();
    }
  }
  if (auto it = j.find("types"); it != j.end()) {
    if (!it->is_array()) return invalid(where + ".types must be an array of event types");
    r.types.clear();
    for (const auto& t : *it) {
      if (!t.is_string()) return invalid(where + ".types must be an array of strings");
      r.types.push_back(t.get<std::string>());
    }
  }
  if (auto st = check_rule(r, where); !st) return st;
  return r;
}

}  // namespace

// --- access_rules (the public builder) ------------------------------------

access_rules& access_rules::add(access_rule rule) {
  rules_.push_back(std::move(rule));
  return *this;
}

access_rules& access_rules::allow_read(std::string who, std::string view, std::string prefix) {
  access_rule r;
  r.what = action::read;
  r.who = std::move(who);
  r.view = std::move(view);
  r.prefix = std::move(prefix);
  return add(std::move(r));
}

access_rules& access_rules::allow_append(std::string who, std::vector<std::string> types,
                                         std::string prefix, std::optional<std::string> subject) {
  access_rule r;
  r.what = action::append;
  r.who = std::move(who);
  r.types = std::move(types);
  r.prefix = std::move(prefix);
  r.subject = std::move(subject);
  return add(std::move(r));
}

access_rules& access_rules::allow_query(std::string who, std::string view, std::string query,
                                        std::map<std::string, std::string> params) {
  access_rule r;
  r.params = std::move(params);
  r.what = action::query;
  r.who = std::move(who);
  r.view = std::move(view);
  r.query = std::move(query);
  return add(std::move(r));
}

access_rules& access_rules::allow_admin(std::string who) {
  access_rule r;
  r.what = action::admin;
  r.who = std::move(who);
  return add(std::move(r));
}

result<access_rules> access_rules::from_json(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("rules") || !j["rules"].is_array()) {
    return invalid("the rules must be a JSON object {\"rules\": [...]}");
  }
  access_rules out;
  size_t i = 0;
  for (const auto& r : j["rules"]) {
    auto rule = rule_from_json(r, "rules[" + std::to_string(i++) + "]");
    if (!rule) return rule.error();
    out.add(std::move(*rule));
  }
  return out;
}

result<access_rules> access_rules::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid("cannot read the rules file " + path);
  std::stringstream text;
  text << in.rdbuf();
  auto rules = from_json(text.str());
  if (!rules) return invalid(path + ": " + rules.error().message());
  return rules;
}

// --- authorizer ---------------------------------------------------------------

std::optional<std::string_view> bearer_token(std::string_view h) {
  while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
  if (h.size() < 7) return std::nullopt;
  std::string scheme(h.substr(0, 7));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme != "bearer ") return std::nullopt;
  h.remove_prefix(7);
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  if (h.empty()) return std::nullopt;
  return h;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

authorizer::authorizer(jwt_verifier verifier, access_rules rules, int64_t leeway)
    : verifier_(std::move(verifier)), rules_(std::move(rules)), leeway_(leeway) {}

int64_t authorizer::expiry(const token_claims& token) const { return token.expires + leeway_; }

result<std::shared_ptr<const authorizer>> authorizer::make(const auth_options& options) {
  size_t i = 0;
  for (const auto& r : options.rules.rules()) {
    if (auto st = check_rule(r, "rules[" + std::to_string(i++) + "]"); !st) return st;
  }
  auto verifier = jwt_verifier::make(options.tokens);
  if (!verifier) return verifier.error();
  return std::shared_ptr<const authorizer>(new authorizer(std::move(*verifier), options.rules,
                                                         options.tokens.leeway.count()));
}

std::variant<principal, denial> authorizer::authenticate(std::optional<std::string_view> token,
                                                         int64_t now) const {
  if (!token) return principal{};
  auto claims = verifier_.verify(*token, now);
  if (!claims) return denial{true, claims.error().message()};
  return principal{std::move(*claims)};
}

verdict authorizer::refuse(const principal& who, std::string what) const {
  if (who.anonymous()) {
    return denial{true, what + " needs a token: send Authorization: Bearer <token>"};
  }
  return denial{false, "the token of " + who.token->sub + " does not allow " + what};
}

verdict authorizer::read_key(const principal& who, const std::string& view,
                             std::string_view key) const {
  for (const auto& r : rules_.rules()) {
    if (r.what != action::read || !applies_to(r, who) || !name_matches(r.view, view)) continue;
    auto prefix = substitute(r.prefix, who);
    if (prefix && starts_with(key, *prefix)) return std::nullopt;
  }
  return refuse(who, "reading key \"" + std::string(key) + "\" of view " + view);
}

verdict authorizer::read_prefix(const principal& who, const std::string& view,
                                std::string_view prefix) const {
  for (const auto& r : rules_.rules()) {
    if (r.what != action::read || !applies_to(r, who) || !name_matches(r.view, view)) continue;
    auto allowed = substitute(r.prefix, who);
    if (allowed && starts_with(prefix, *allowed)) return std::nullopt;
  }
  return refuse(who, "reading the keys with prefix \"" + std::string(prefix) + "\" of view " +
                         view + " (a prefix must lie entirely inside an allowed one)");
}

verdict authorizer::append(const principal& who, const std::vector<event_input>& events) const {
  for (size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    bool ok = false;
    for (const auto& r : rules_.rules()) {
      if (r.what != action::append || !applies_to(r, who) || !type_allowed(r, e.type)) continue;
      auto prefix = substitute(r.prefix, who);
      if (!prefix || !starts_with(e.key, *prefix)) continue;
      if (r.subject) {
        auto subject = substitute(*r.subject, who);
        if (!subject || e.subject != *subject) continue;
      }
      ok = true;
      break;
    }
    if (!ok) {
      std::string what = "appending events[" + std::to_string(i) + "] of type " + e.type +
                         " with key \"" + e.key + "\"";
      if (!e.subject.empty()) what += " and subject \"" + e.subject + "\"";
      return refuse(who, what);
    }
  }
  return std::nullopt;
}

verdict authorizer::query(const principal& who, const std::string& view, const std::string& name,
                          const std::map<std::string, std::string>& params) const {
  for (const auto& r : rules_.rules()) {
    if (r.what != action::query || !applies_to(r, who) || !name_matches(r.view, view) ||
        !name_matches(r.query, name)) {
      continue;
    }
    bool ok = true;
    for (const auto& [param, value] : r.params) {
      auto allowed = substitute(value, who);
      auto given = params.find(param);
      ok = ok && allowed && given != params.end() && starts_with(given->second, *allowed);
    }
    if (ok) return std::nullopt;
  }
  std::string what = "the query " + name + " of view " + view;
  const char* sep = " with ";
  for (const auto& [param, value] : params) {
    what += sep + param + "=" + value;
    sep = ", ";
  }
  return refuse(who, what);
}

verdict authorizer::admin(const principal& who) const {
  for (const auto& r : rules_.rules()) {
    if (r.what == action::admin && applies_to(r, who)) return std::nullopt;
  }
  return refuse(who, "the admin endpoints (the log, /v1/views, /metrics)");
}

}  // namespace derive::web
