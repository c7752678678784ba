#pragma once
// The admin routes of view versions (docs/protocol.md, "Admin"):
//   POST /v1/admin/views/{view}/rebuild?version=N
//   POST /v1/admin/views/{view}/cutover?version=N
//   POST /v1/admin/views/{view}/rollback
// The router checks the admin scope (or a loopback peer) before calling.

#include <optional>
#include <string_view>

#include <derive/runtime.hpp>

#include "web/router.hpp"

namespace derive::web {

// The reply to a version admin request; nullopt when `path` is not one.
std::optional<http_reply> version_admin(runtime& rt, std::string_view method,
                                        std::string_view path, std::string_view query);

}  // namespace derive::web
