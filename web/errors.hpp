#pragma once
// Errors on the wire (protocol.md, "Common rules"): one table from derive::errc
// to HTTP status, and the error body {"error":{"code","message"}}.

#include <string>
#include <string_view>

#include <derive/status.hpp>

namespace derive::web {

// The HTTP status for an error code: the one table of the server.
unsigned http_status_for(errc code);

// {"error":{"code":"<code>","message":"<message>"}}
std::string error_body(std::string_view code, std::string_view message);
std::string error_body(const status& st);

// Codes that exist only in HTTP (not in derive::errc).
namespace http_code {
inline constexpr std::string_view bad_request = "bad_request";                // 400
inline constexpr std::string_view forbidden = "forbidden";                    // 403
inline constexpr std::string_view not_found = "not_found";                    // 404
inline constexpr std::string_view method_not_allowed = "method_not_allowed";  // 405
inline constexpr std::string_view length_required = "length_required";        // 411
inline constexpr std::string_view unsupported_media_type = "unsupported_media_type";  // 415
inline constexpr std::string_view upgrade_required = "upgrade_required";      // 426
inline constexpr std::string_view header_too_large = "header_too_large";      // 431
}  // namespace http_code

}  // namespace derive::web
