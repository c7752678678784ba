#include "web/static_files.hpp"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "web/url.hpp"

namespace derive::web {
namespace fs = std::filesystem;

std::string_view content_type_for(std::string_view filename) {
  struct entry {
    std::string_view ext, type;
  };
  static constexpr entry types[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript"},
      {".mjs", "text/javascript"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".webp", "image/webp"},
      {".ico", "image/x-icon"},
      {".wasm", "application/wasm"},
      {".woff", "font/woff"},
      {".woff2", "font/woff2"},
  };
  auto dot = filename.rfind('.');
  auto slash = filename.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) {
    return "application/octet-stream";
  }
  std::string ext(filename.substr(dot));
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const auto& e : types) {
    if (e.ext == ext) return e.type;
  }
  return "application/octet-stream";
}

static_lookup lookup_static(const std::string& root, std::string_view url_path) {
  static_lookup out;
  if (root.empty()) return out;
  auto decoded = percent_decode(url_path, false);
  if (!decoded) {
    out.result = static_lookup::bad_encoding;
    return out;
  }
  if (decoded->find('\0') != std::string::npos || decoded->find('\\') != std::string::npos) {
    return out;
  }
  std::error_code ec;
  fs::path base = fs::canonical(root, ec);
  if (ec) return out;
  fs::path p = base;
  std::string_view rest = *decoded;
  while (!rest.empty()) {
    auto slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    if (seg.empty()) continue;
    if (seg == "." || seg == "..") return out;
    p /= std::string(seg);
  }
  if (fs::is_directory(p, ec)) p /= "index.html";
  fs::path real = fs::canonical(p, ec);
  if (ec || !fs::is_regular_file(real, ec)) return out;
  // The file must lie inside the root, symlinks resolved.
  auto base_str = base.string();
  auto real_str = real.string();
  if (real_str.size() <= base_str.size() || real_str.compare(0, base_str.size(), base_str) != 0 ||
      (base_str.back() != '/' && real_str[base_str.size()] != '/')) {
    return out;
  }
  out.result = static_lookup::found;
  out.content_type = std::string(content_type_for(real_str));
  out.path = std::move(real_str);
  return out;
}

std::string find_client_dir(const std::string& configured) {
  if (!configured.empty()) return configured;
  std::error_code ec;
#ifdef DERIVE_CLIENT_DIR
  if (fs::is_directory(DERIVE_CLIENT_DIR, ec)) return DERIVE_CLIENT_DIR;
#endif
#ifdef DERIVE_CLIENT_INSTALL_DIR
  if (fs::is_directory(DERIVE_CLIENT_INSTALL_DIR, ec)) return DERIVE_CLIENT_INSTALL_DIR;
#endif
  return {};
}

}  // namespace derive::web
