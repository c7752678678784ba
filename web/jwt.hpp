#pragma once
// JSON Web Tokens (RFC 7519) in compact form, verified with OpenSSL:
// HS256, RS256, ES256. No OpenSSL types here. Thread-safe after make().

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include <derive/status.hpp>
#include <derive/web/auth.hpp>

namespace derive::web {

// What a verified token says about its holder.
struct token_claims {
  std::string sub;
  std::set<std::string> scopes;                 // `scope` (space-separated) and `scp`
  std::map<std::string, std::string> strings;   // every string claim, for templates
  int64_t expires = 0;                          // `exp`, seconds since the epoch
};

class jwt_verifier {
 public:
  // Loads the keys. Errors: invalid_parameter (no key, unreadable file, a PEM
  // block that is not an RSA or P-256 public key).
  static result<jwt_verifier> make(const token_options& options);
  jwt_verifier(jwt_verifier&&) noexcept;
  jwt_verifier& operator=(jwt_verifier&&) noexcept;
  ~jwt_verifier();

  // Verifies `token` at `now` (seconds since the epoch). The error message
  // says what is wrong (malformed, algorithm not accepted, bad signature,
  // expired, not yet valid, wrong issuer or audience, no `sub`); the code is
  // always invalid_parameter.
  result<token_claims> verify(std::string_view token, int64_t now) const;

 private:
  struct impl;
  explicit jwt_verifier(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

// base64url without padding (RFC 7515 section 2); decode refuses anything
// else (padding, '+', '/', whitespace). Exposed for tests.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace derive::web
