#pragma once
// Authentication (JWT bearer tokens) and access rules for the server
// (docs/security.md). No OpenSSL, Beast or JSON types here.
//
//   derive::web::auth_options auth;
//   auth.tokens.hs256_secret = "...";                // and/or public_keys_file
//   auth.tokens.issuer = "https://id.example";
//   auth.rules.allow_read("user", "documents", "users/{sub}/")
//       .allow_append("user", {"doc.put", "doc.delete"}, "users/{sub}/")
//       .allow_admin("scope:admin");
//   server_options o;  o.auth = auth;
//
// With server_options::auth unset (the default) nothing is checked. With it
// set, every request needs a rule that allows it; anonymous access is a rule
// like any other (who = "anonymous" or "anyone").

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <derive/status.hpp>

namespace derive::web {

// Which tokens are accepted. At least one key must be given.
struct token_options {
  // HS256 with this shared secret; empty: HS256 tokens are refused.
  std::string hs256_secret;
  // PEM text with one or more public keys ("-----BEGIN PUBLIC KEY-----"):
  // RSA keys verify RS256 tokens, EC P-256 keys ES256 tokens.
  std::string public_keys_pem;
  // A file with such PEM text (read at server start), in addition.
  std::string public_keys_file;
  // When set, a token's `iss` must equal it / `aud` must be or contain it.
  std::string issuer;
  std::string audience;
  // Clock skew tolerated for `exp` and `nbf`.
  std::chrono::seconds leeway{0};
};

// One grant. Templates ({sub}, or {name} for any string claim of the token)
// are substituted from the token; a rule whose template names a claim the
// token lacks, or whose value is empty or holds '/', does not apply.
struct access_rule {
  enum class action { read, append, query, admin };
  action what = action::read;
  // "anyone" (with or without a token), "anonymous" (without), "user" (any
  // valid token), or "scope:<name>" (a token with that scope in `scope`/`scp`).
  std::string who = "user";
  // read, query: the view ("*": every view).
  std::string view = "*";
  // read: the key prefix (a template) a read, range or subscription must lie
  // in; append: the prefix every event's key must start with.
  std::string prefix;
  // append: event types ("*" any, "doc.*" a prefix).
  std::vector<std::string> types{"*"};
  // append: when set, every event's subject must equal it (a template).
  std::optional<std::string> subject;
  // query: the query name ("*": every query of the view).
  std::string query = "*";
  // query: parameters the request must carry, each starting with its value
  // (a template), e.g. {"in": "users/{sub}/"} for a query that filters by it.
  std::map<std::string, std::string> params;
};

// The rules of an application: what is not allowed by some rule is refused.
class access_rules {
 public:
  access_rules& add(access_rule rule);
  access_rules& allow_read(std::string who, std::string view, std::string prefix);
  access_rules& allow_append(std::string who, std::vector<std::string> types, std::string prefix,
                             std::optional<std::string> subject = std::nullopt);
  access_rules& allow_query(std::string who, std::string view, std::string query = "*",
                            std::map<std::string, std::string> params = {});
  access_rules& allow_admin(std::string who);

  // {"rules": [{"allow": "read", "who": "user", "view": "documents",
  //             "prefix": "users/{sub}/"}, ...]} (docs/security.md; members
//   as in access_rule, "allow" naming the action).
  // Errors: invalid_parameter naming the rule and member.
  static result<access_rules> from_json(std::string_view text);
  static result<access_rules> from_file(const std::string& path);

  const std::vector<access_rule>& rules() const { return rules_; }

 private:
  std::vector<access_rule> rules_;
};

struct auth_options {
  token_options tokens;
  access_rules rules;
};

}  // namespace derive::web
