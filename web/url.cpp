#include "web/url.hpp"

#include <charconv>

namespace derive::web {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

bool is_v6_char(char c) { return hex_value(c) >= 0 || c == ':' || c == '.'; }

}  // namespace

std::optional<authority> parse_host_header(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  std::string v;
  for (char c : value) v.push_back(lower_ascii(c));
  authority a;
  std::string_view rest = v;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos || close < 3) return std::nullopt;
    for (char c : rest.substr(1, close - 1)) {
      if (!is_v6_char(c)) return std::nullopt;
    }
    a.host = std::string(rest.substr(0, close + 1));
    rest.remove_prefix(close + 1);
  } else {
    auto colon = rest.find(':');
    a.host = std::string(rest.substr(0, colon));
    if (a.host.empty()) return std::nullopt;
    for (char c : a.host) {
      if (!is_name_char(c)) return std::nullopt;
    }
    rest.remove_prefix(a.host.size());
  }
  if (!rest.empty()) {
    if (rest.front() != ':' || rest.size() < 2 || rest.size() > 6) return std::nullopt;
    rest.remove_prefix(1);
    for (char c : rest) {
      if (c < '0' || c > '9') return std::nullopt;
    }
    a.port = std::string(rest);
  }
  return a;
}

std::optional<origin_parts> parse_origin(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (!value.empty() && value.back() == '/') value.remove_suffix(1);
  auto sep = value.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  origin_parts o;
  for (char c : value.substr(0, sep)) o.scheme.push_back(lower_ascii(c));
  if (o.scheme != "http" && o.scheme != "https") return std::nullopt;
  auto where = parse_host_header(value.substr(sep + 3));
  if (!where) return std::nullopt;
  o.where = std::move(*where);
  return o;
}

std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

target_parts split_target(std::string_view target) {
  // Absolute form: scheme "://" authority path.
  if (auto scheme_end = target.find("://");
      scheme_end != std::string_view::npos && target.substr(0, 1) != "/") {
    auto path_start = target.find_first_of("/?", scheme_end + 3);
    target = path_start == std::string_view::npos ? std::string_view("/")
                                                   : target.substr(path_start);
  }
  target = target.substr(0, target.find('#'));
  auto q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

result<query_map> parse_query(std::string_view query) {
  query_map out;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    std::string_view raw_name = pair.substr(0, eq);
    std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    auto name = percent_decode(raw_name, true);
    if (!name) {
      return status{errc::invalid_parameter,
                    "a query parameter name has a bad percent-encoding"};
    }
    auto value = percent_decode(raw_value, true);
    if (!value) {
      return status{errc::invalid_parameter,
                    "query parameter '" + *name + "' has a bad percent-encoding"};
    }
    out[std::move(*name)] = std::move(*value);
  }
  return out;
}

std::optional<uint64_t> parse_uint(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  uint64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc{} || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

result<uint64_t> uint_param(const query_map& q, const std::string& name, uint64_t fallback,
                            uint64_t min, uint64_t max) {
  auto it = q.find(name);
  if (it == q.end()) return fallback;
  auto v = parse_uint(it->second);
  if (!v || *v < min || *v > max) {
    return status{errc::invalid_parameter, "query parameter '" + name +
                                               "' must be an integer from " +
                                               std::to_string(min) + " to " +
                                               std::to_string(max)};
  }
  return *v;
}

}  // namespace derive::web
