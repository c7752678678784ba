#pragma once
// Scanning files byte by byte for strings (`derive verify-forgotten`,
// docs/operating.md): after a subject was forgotten, no file of the data
// directory may still hold its data in any form the storage writes it.
//
// Each needle is searched in its plain bytes and in its JSON-escaped forms
// (as nlohmann::json writes a string: escapes only, and \uXXXX for every
// non-ASCII character), which is how event data, keys inside JSON values
// and view values are stored. Keys are stored as their plain bytes (a view's
// state key, a log record's key field), which the plain form covers.
//
// Pure functions of the files' bytes; any thread.

#include <cstdint>
#include <string>
#include <vector>

#include <derive/status.hpp>

namespace derive {

struct byte_hit {
  std::string file;     // the path, as found under the directory
  uint64_t offset = 0;  // of the hit's first byte in the file
  std::string needle;   // the string searched for
  std::string form;     // "plain", "json" or "json_ascii"
};

// The distinct byte forms of `needle`: (form, bytes), plain first; empty
// needles have none.
std::vector<std::pair<std::string, std::string>> needle_forms(const std::string& needle);

// Every occurrence of every form of every needle in every regular file under
// `dir` (recursively; symbolic links are not followed), by file then offset;
// at most `max_hits` (then `truncated` is set). Errors: io_error naming the
// file that cannot be read.
struct byte_scan_report {
  std::vector<byte_hit> hits;
  uint64_t files = 0;
  uint64_t bytes = 0;
  bool truncated = false;
};
result<byte_scan_report> scan_directory(const std::string& dir,
                                        const std::vector<std::string>& needles,
                                        size_t max_hits = 1000);

}  // namespace derive
