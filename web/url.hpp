#pragma once
// Request targets: splitting, percent-decoding, query parameters
// (docs/protocol.md, "Request targets"). No Beast types; pure functions.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <derive/status.hpp>

namespace derive::web {

// Percent-decodes `in`. With `plus_is_space` (query strings) '+' becomes a
// space; in paths '+' stays '+'. nullopt when a '%' is not followed by two
// hex digits.
std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space);

// The path and the query of a request target ("/a/b?x=1" -> "/a/b", "x=1").
// An absolute-form target ("http://host/a") is reduced to its path.
struct target_parts {
  std::string_view path;
  std::string_view query;  // without '?'
};
target_parts split_target(std::string_view target);

// Decoded query parameters; a repeated name keeps its last value.
using query_map = std::map<std::string, std::string>;
// Errors: invalid_parameter (a bad percent-encoding, naming the parameter).
result<query_map> parse_query(std::string_view query);

// A decimal integer without sign or spaces that fits in 64 bits.
std::optional<uint64_t> parse_uint(std::string_view s);

// An integer query parameter `name` in [min, max], or `fallback` when absent.
// Errors: invalid_parameter naming the parameter and its range.
result<uint64_t> uint_param(const query_map& q, const std::string& name, uint64_t fallback,
                            uint64_t min, uint64_t max);

// The authority of an Origin or Host header, lower-cased: host is a DNS name,
// an IPv4 address or a bracketed IPv6 address ("[::1]"); port is empty when
// none was given.
struct authority {
  std::string host;
  std::string port;
};

// A Host header value ("host[:port]"). nullopt for anything else: userinfo
// ('@'), a path, an empty host, characters outside DNS names and IP
// literals, a port that is not 1-5 digits.
std::optional<authority> parse_host_header(std::string_view value);

// An Origin header value ("scheme://host[:port]", RFC 6454). scheme is
// "http" or "https"; nullopt for "null", other schemes, userinfo
// ("http://localhost:1@evil.example"), a path, garbage.
struct origin_parts {
  std::string scheme;
  authority where;
};
std::optional<origin_parts> parse_origin(std::string_view value);

}  // namespace derive::web
