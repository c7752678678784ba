#include "core/byte_scan.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

namespace derive {
namespace {

namespace fs = std::filesystem;
constexpr size_t chunk_bytes = size_t{1} << 20;

struct pattern {
  const std::string* needle;
  std::string form;
  std::string bytes;
};

std::string json_inner(const std::string& s, bool ascii) {
  std::string quoted = nlohmann::json(s).dump(-1, ' ', ascii, nlohmann::json::error_handler_t::replace);
  return quoted.substr(1, quoted.size() - 2);
}

// Scans one file in chunks that overlap by the longest pattern less one byte,
// so that a hit across a chunk boundary is found exactly once.
status scan_file(const fs::path& path, const std::vector<pattern>& patterns, size_t longest,
                 size_t max_hits, byte_scan_report& report) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return {errc::io_error, "cannot read " + path.string() + ": " + std::strerror(errno)};
  std::string window;
  uint64_t window_start = 0;  // file offset of window[0]
  std::vector<char> buffer(chunk_bytes);
  std::map<uint64_t, std::vector<byte_hit>> found;  // by offset, for file order
  for (;;) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const size_t n = static_cast<size_t>(in.gcount());
    if (n == 0) break;
    report.bytes += n;
    const size_t old = window.size();
    window.append(buffer.data(), n);
    for (const auto& p : patterns) {
      // Hits that end in the new bytes only (the rest were found before).
      size_t from = old >= p.bytes.size() - 1 ? old - (p.bytes.size() - 1) : 0;
      for (size_t at = window.find(p.bytes, from); at != std::string::npos;
           at = window.find(p.bytes, at + 1))
        found[window_start + at].push_back({path.string(), window_start + at, *p.needle, p.form});
    }
    const size_t keep = std::min(window.size(), longest - 1);
    window_start += window.size() - keep;
    window.erase(0, window.size() - keep);
  }
  if (in.bad()) return {errc::io_error, "cannot read " + path.string()};
  for (auto& [offset, hits] : found)
    for (auto& h : hits) {
      if (report.hits.size() >= max_hits) {
        report.truncated = true;
        return status::ok();
      }
      report.hits.push_back(std::move(h));
    }
  return status::ok();
}

}  // namespace

std::vector<std::pair<std::string, std::string>> needle_forms(const std::string& needle) {
  std::vector<std::pair<std::string, std::string>> out;
  if (needle.empty()) return out;
  auto add = [&](std::string form, std::string bytes) {
    for (const auto& [f, b] : out)
      if (b == bytes) return;
    out.emplace_back(std::move(form), std::move(bytes));
  };
  add("plain", needle);
  add("json", json_inner(needle, false));
  add("json_ascii", json_inner(needle, true));
  return out;
}

result<byte_scan_report> scan_directory(const std::string& dir,
                                        const std::vector<std::string>& needles,
                                        size_t max_hits) {
  std::vector<pattern> patterns;
  size_t longest = 1;
  for (const auto& needle : needles)
    for (auto& [form, bytes] : needle_forms(needle)) {
      longest = std::max(longest, bytes.size());
      patterns.push_back({&needle, std::move(form), std::move(bytes)});
    }
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return status{errc::not_found, "'" + dir + "' is not a directory"};
  std::vector<fs::path> files;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec)) files.push_back(it->path());
  if (ec) return status{errc::io_error, "cannot list " + dir + ": " + ec.message()};
  std::sort(files.begin(), files.end());
  byte_scan_report report;
  for (const auto& file : files) {
    ++report.files;
    if (auto st = scan_file(file, patterns, longest, max_hits, report); !st) return st;
    if (report.truncated) break;
  }
  return report;
}

}  // namespace derive
