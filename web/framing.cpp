#include "web/framing.hpp"

#include <cstddef>

namespace derive::web {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct field_counts {
  size_t host = 0;
  size_t idempotency_key = 0;
  size_t transfer_encoding = 0;
  size_t content_length = 0;
  bool transfer_encoding_not_chunked = false;
  bool folded = false;
};

// Counts the fields of interest in the lines after the request line.
field_counts count_fields(std::string_view header) {
  field_counts n;
  bool request_line = true;
  while (!header.empty()) {
    auto nl = header.find('\n');
    std::string_view line = header.substr(0, nl);
    header = nl == std::string_view::npos ? std::string_view{} : header.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      if (request_line) continue;  // empty lines before the request line
      break;                       // the end of the header
    }
    if (request_line) {
      request_line = false;
      continue;
    }
    if (line.front() == ' ' || line.front() == '\t') {
      n.folded = true;
      continue;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // the parser refused it already
    auto name = line.substr(0, colon);
    auto value = trim_ows(line.substr(colon + 1));
    if (iequals(name, "host")) ++n.host;
    else if (iequals(name, "idempotency-key")) ++n.idempotency_key;
    else if (iequals(name, "content-length")) ++n.content_length;
    else if (iequals(name, "transfer-encoding")) {
      ++n.transfer_encoding;
      if (!iequals(value, "chunked")) n.transfer_encoding_not_chunked = true;
    }
  }
  return n;
}

}  // namespace

std::optional<std::string> framing_problem(std::string_view raw_header, unsigned version) {
  auto n = count_fields(raw_header);
  if (n.folded) {
    return "obsolete line folding (a header line starting with a space or a tab) is not "
           "accepted; send each header field on one line";
  }
  if (n.transfer_encoding > 1) return "send at most one Transfer-Encoding header";
  if (n.transfer_encoding_not_chunked) {
    return "Transfer-Encoding other than chunked is not accepted; send the body with "
           "Content-Length and no Transfer-Encoding";
  }
  if (n.transfer_encoding && n.content_length) {
    return "send either Transfer-Encoding or Content-Length, not both (send Content-Length)";
  }
  if (n.host > 1) return "send exactly one Host header (this request has " +
                         std::to_string(n.host) + ")";
  if (n.host == 0 && version >= 11) return "an HTTP/1.1 request must carry a Host header";
  if (n.idempotency_key > 1) return "send at most one Idempotency-Key header";
  return std::nullopt;
}

}  // namespace derive::web
