#pragma once
// The authorizer: verifies a request's token and decides with the
// application's access rules (include/derive/web/auth.hpp, docs/security.md)
// whether it may proceed. No Beast, CAF or LMDB; immutable and thread-safe
// after make(). The HTTP and WebSocket sessions make one call per request.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <derive/event.hpp>
#include <derive/web/auth.hpp>
#include "web/jwt.hpp"

namespace derive::web {

// Who is asking: the claims of a verified token, or nobody (anonymous).
struct principal {
  std::optional<token_claims> token;
  bool anonymous() const { return !token; }
};

// A refusal: `unauthenticated` is 401 unauthorized (no valid token where one
// is needed), otherwise 403 forbidden (a valid token, no rule allows it).
struct denial {
  bool unauthenticated = false;
  std::string message;
};
using verdict = std::optional<denial>;  // nullopt: allowed

// The token of an Authorization header value "Bearer <token>"; nullopt when
// the header has another scheme or no token.
std::optional<std::string_view> bearer_token(std::string_view authorization);

// Seconds since the Unix epoch, now.
int64_t unix_now();

class authorizer {
 public:
  // Errors: invalid_parameter (no key, a bad key file, a bad template).
  static result<std::shared_ptr<const authorizer>> make(const auth_options& options);

  // nullopt token: anonymous. A token that does not verify is a denial
  // (401), never anonymous.
  std::variant<principal, denial> authenticate(std::optional<std::string_view> token,
                                               int64_t now) const;

  // When a verified token stops being valid (its exp plus the leeway).
  int64_t expiry(const token_claims& token) const;

  // One key of a view (GET, WebSocket get and key subscriptions).
  verdict read_key(const principal& who, const std::string& view, std::string_view key) const;
  // Every key starting with `prefix` (ranges, prefix subscriptions): allowed
  // only when one rule covers the whole prefix.
  verdict read_prefix(const principal& who, const std::string& view,
                      std::string_view prefix) const;
  // Every event of an append (the message names the first refused one).
  verdict append(const principal& who, const std::vector<event_input>& events) const;
  // A named query with its parameters.
  verdict query(const principal& who, const std::string& view, const std::string& name,
                const std::map<std::string, std::string>& params) const;
  // Admin endpoints: the log (GET /v1/events), /v1/views, /metrics.
  verdict admin(const principal& who) const;

 private:
  authorizer(jwt_verifier verifier, access_rules rules, int64_t leeway);
  verdict refuse(const principal& who, std::string what) const;
  jwt_verifier verifier_;
  access_rules rules_;
  int64_t leeway_ = 0;
};

}  // namespace derive::web
