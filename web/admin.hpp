#pragma once
// The admin routes of audits and scrubs (docs/protocol.md, "Admin"), and the
// JSON of their results (also in GET /v1/views):
//   POST /v1/admin/views/{view}/audit   202, starts an audit
//   GET  /v1/admin/views/{view}/audit   200 {"audit": {...} | null}
//   POST /v1/admin/scrub                202, starts a scrub of the log
//   GET  /v1/admin/scrub                200 {"scrub": {...} | null}
// The router checks who may call them before (admin scope, or loopback
// without authentication).

#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include <derive/audit.hpp>
#include <derive/runtime.hpp>

#include "web/router.hpp"

namespace derive::web {

nlohmann::json audit_json(const audit_result& r);
nlohmann::json scrub_json(const scrub_result& r);  // null when never run

// The reply of an audit or scrub route, or nullopt when `path` (under
// /v1/admin/) is none of them.
std::optional<http_reply> audit_route(runtime& rt, std::string_view method,
                                      std::string_view path);

// Whether a peer address is the loopback interface (127.0.0.0/8, ::1, ::ffff:127.x).
bool is_loopback_address(std::string_view address);

}  // namespace derive::web
