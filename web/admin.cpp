#include "web/admin.hpp"

#include <nlohmann/json.hpp>

#include "web/errors.hpp"
#include "web/url.hpp"

namespace derive::web {
namespace {

using nlohmann::json;

constexpr std::string_view views_prefix = "/v1/admin/views/";

http_reply json_reply(unsigned status, const json& body) {
  http_reply r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

// A stored value: its JSON, or the text itself when it is not JSON (a value
// written underneath may be anything); null when absent.
json value_json(const std::optional<std::string>& v) {
  if (!v) return nullptr;
  auto parsed = json::parse(*v, nullptr, false);
  return parsed.is_discarded() ? json(*v) : parsed;
}

http_reply method_not_allowed(std::string_view method) {
  auto r = error_reply(405, http_code::method_not_allowed,
                       "method " + std::string(method) + " is not allowed here; use GET or POST");
  r.headers.emplace_back("Allow", "GET, HEAD, POST");
  return r;
}

}  // namespace

json audit_json(const audit_result& r) {
  json differences = json::array();
  for (const auto& d : r.differences)
    differences.push_back(
        {{"key", d.key}, {"live", value_json(d.live)}, {"expected", value_json(d.expected)}});
  json out = {{"view", r.view},
              {"version", r.version},
              {"offset", r.offset},
              {"ok", r.ok},
              {"digest", r.digest},
              {"expected_digest", r.expected_digest},
              {"differences", std::move(differences)},
              {"more_differences", r.more_differences},
              {"events", r.events},
              {"duration_ms", r.duration_ms},
              {"finished_at_ms", r.finished_at_ms}};
  if (!r.error.empty()) out["error"] = r.error;
  return out;
}

json scrub_json(const scrub_result& r) {
  if (!r.running && r.finished_at_ms == 0) return nullptr;
  json problems = json::array();
  for (const auto& p : r.problems) problems.push_back({{"offset", p.offset}, {"error", p.error}});
  json out = {{"running", r.running},
              {"ok", r.ok},
              {"head", r.head},
              {"checked", r.checked},
              {"problems", std::move(problems)},
              {"more_problems", r.more_problems},
              {"duration_ms", r.duration_ms},
              {"finished_at_ms", r.finished_at_ms}};
  if (!r.error.empty()) out["error"] = r.error;
  return out;
}

std::optional<http_reply> audit_route(runtime& rt, std::string_view method,
                                      std::string_view path) {
  const bool get = method == "GET" || method == "HEAD";
  const bool post = method == "POST";
  if (path == "/v1/admin/scrub") {
    if (get) return json_reply(200, {{"scrub", scrub_json(rt.last_scrub())}});
    if (!post) return method_not_allowed(method);
    if (auto st = rt.start_scrub(); !st) return error_reply(st);
    return json_reply(202, {{"scrub", scrub_json(rt.last_scrub())}});
  }
  constexpr std::string_view audit_suffix = "/audit";
  if (path.substr(0, views_prefix.size()) != views_prefix || path.size() <= audit_suffix.size() ||
      path.substr(path.size() - audit_suffix.size()) != audit_suffix)
    return std::nullopt;
  auto raw = path.substr(views_prefix.size(),
                         path.size() - views_prefix.size() - audit_suffix.size());
  if (raw.empty() || raw.find('/') != std::string_view::npos) return std::nullopt;
  auto view = percent_decode(raw, false);
  if (!view)
    return error_reply(400, to_string(errc::invalid_parameter),
                       "the path has a bad percent-encoding");
  if (get) {
    if (!rt.view(*view)) return error_reply(rt.view(*view).error());
    auto last = rt.last_audit(*view);
    return json_reply(200, {{"audit", last ? audit_json(*last) : json(nullptr)}});
  }
  if (!post) return method_not_allowed(method);
  if (auto st = rt.start_audit(*view); !st) return error_reply(st);
  return json_reply(202, {{"view", *view}, {"started", true}});
}

bool is_loopback_address(std::string_view address) {
  if (address.substr(0, 7) == "::ffff:") address.remove_prefix(7);
  return address == "::1" || address.substr(0, 4) == "127.";
}

}  // namespace derive::web
