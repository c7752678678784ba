#pragma once
// Static files for a sample's UI and the browser client (docs/protocol.md,
// "Static files"). Pure path logic; the session streams the file.

#include <cstdint>
#include <string>
#include <string_view>

namespace derive::web {

// The Content-Type for a file name, by extension ("application/octet-stream"
// when unknown).
std::string_view content_type_for(std::string_view filename);

struct static_lookup {
  enum outcome { found, bad_encoding, not_found };
  outcome result = not_found;
  std::string path;  // when found: the canonical file path
  std::string content_type;
};

// Maps the raw (still percent-encoded) URL path `url_path`, relative to the
// mount point, to a regular file under `root`. A directory maps to its
// index.html. Refused (not_found): empty root, "." or ".." segments (also when
// percent-encoded), NUL or backslash, and anything whose canonical path (after
// symlinks) lies outside the canonical root.
static_lookup lookup_static(const std::string& root, std::string_view url_path);

// The folder /client/ is served from: `configured` when set; else the first
// existing of the source copy this library was built from (DERIVE_CLIENT_DIR)
// and the installed copy (DERIVE_CLIENT_INSTALL_DIR). Empty when none exists.
std::string find_client_dir(const std::string& configured);

}  // namespace derive::web
