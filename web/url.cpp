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

}  // namespace

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
