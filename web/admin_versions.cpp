#include "web/admin_versions.hpp"

#include <string>

#include <nlohmann/json.hpp>

#include "web/errors.hpp"
#include "web/url.hpp"

namespace derive::web {
namespace {

constexpr std::string_view prefix = "/v1/admin/views/";

http_reply json_ok(unsigned code, const nlohmann::json& body) {
  http_reply r;
  r.status = code;
  r.body = body.dump();
  return r;
}

http_reply switch_reply(const std::string& view, const result<version_switch>& r) {
  if (!r) return error_reply(r.error());
  return json_ok(r->switched || r->serving == r->pinned ? 200 : 202,
                 {{"view", view},
                  {"pinned", r->pinned},
                  {"serving", r->serving},
                  {"switched", r->switched}});
}

}  // namespace

std::optional<http_reply> version_admin(runtime& rt, std::string_view method,
                                        std::string_view path, std::string_view query) {
  if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
  auto rest = path.substr(prefix.size());
  auto slash = rest.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  auto action = rest.substr(slash + 1);
  if (action != "rebuild" && action != "cutover" && action != "rollback") return std::nullopt;
  auto view = percent_decode(rest.substr(0, slash), false);
  if (!view)
    return error_reply(400, to_string(errc::invalid_parameter), "the view name is badly encoded");
  if (method != "POST") {
    auto r = error_reply(405, http_code::method_not_allowed,
                         "use POST for " + std::string(path));
    r.headers.emplace_back("Allow", "POST");
    return r;
  }
  auto q = parse_query(query);
  if (!q) return error_reply(q.error());
  if (action == "rollback") return switch_reply(*view, rt.rollback(*view));
  if (!q->count("version"))
    return error_reply(400, to_string(errc::invalid_parameter),
                       "give the version: ?version=N");
  auto version = uint_param(*q, "version", 0, 1, UINT32_MAX);
  if (!version) return error_reply(version.error());
  if (action == "cutover")
    return switch_reply(*view, rt.cutover(*view, static_cast<uint32_t>(*version)));
  if (auto st = rt.rebuild(*view, static_cast<uint32_t>(*version)); !st) return error_reply(st);
  return json_ok(202, {{"view", *view}, {"version", *version}, {"rebuilding", true}});
}

}  // namespace derive::web
