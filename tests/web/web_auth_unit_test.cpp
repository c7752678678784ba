// The JWT verifier and the access rules (web/jwt.hpp, web/access_rules.hpp),
// with tokens signed at test time by OpenSSL (tests/web/token_maker.hpp).
#include <gtest/gtest.h>

#include "tests/web/token_maker.hpp"
#include "web/access_rules.hpp"
#include "web/jwt.hpp"

namespace derive::webtest {
namespace {

using nlohmann::json;
using web::access_rules;
using web::auth_options;
using web::authorizer;
using web::jwt_verifier;
using web::principal;
using web::token_options;

const std::string secret = "a shared secret of at least 32 bytes!!";

class jwt_test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new key_pair(key_pair::kind::rsa);
    ec_ = new key_pair(key_pair::kind::ec);
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ec_;
  }

  json claims(int64_t exp_in = 3600) const {
    return {{"sub", "alice"}, {"exp", now_ + exp_in}, {"iss", "https://id.test"},
            {"aud", "derive"}};
  }

  jwt_verifier verifier(token_options o) const {
    auto v = jwt_verifier::make(o);
    EXPECT_TRUE(v.has_value()) << (v ? "" : v.error().message());
    return std::move(*v);
  }
  jwt_verifier all_keys() const {
    token_options o;
    o.hs256_secret = secret;
    o.public_keys_pem = rsa_->public_pem() + ec_->public_pem();
    o.issuer = "https://id.test";
    o.audience = "derive";
    return verifier(o);
  }
  // The error message of a refused token (fails the test when accepted).
  std::string refusal(const jwt_verifier& v, const std::string& token) const {
    auto r = v.verify(token, now_);
    EXPECT_FALSE(r.has_value()) << "accepted: " << token;
    return r ? "" : r.error().message();
  }

  static key_pair* rsa_;
  static key_pair* ec_;
  int64_t now_ = now_seconds();
};
key_pair* jwt_test::rsa_ = nullptr;
key_pair* jwt_test::ec_ = nullptr;

TEST_F(jwt_test, base64url_round_trips_and_refuses_other_alphabets) {
  for (std::string s : std::vector<std::string>{"", "f", "fo", "foo", "foob", std::string("\xff\xfe\x00", 3)}) {
    EXPECT_EQ(web::base64url_decode(web::base64url_encode(s)), s);
  }
  EXPECT_FALSE(web::base64url_decode("Zm9v=").has_value());  // padding
  EXPECT_FALSE(web::base64url_decode("a+b/").has_value());   // base64, not base64url
  EXPECT_FALSE(web::base64url_decode("Zm 9v").has_value());
  EXPECT_FALSE(web::base64url_decode("Z").has_value());
}

TEST_F(jwt_test, hs256_rs256_and_es256_tokens_verify) {
  auto v = all_keys();
  for (const auto& token : {make_hs256(secret, claims()), make_signed(*rsa_, "RS256", claims()),
                            make_signed(*ec_, "ES256", claims())}) {
    auto r = v.verify(token, now_);
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_EQ(r->sub, "alice");
    EXPECT_EQ(r->expires, now_ + 3600);
    EXPECT_EQ(r->strings.at("iss"), "https://id.test");
  }
}

TEST_F(jwt_test, scopes_come_from_scope_and_scp) {
  auto c = claims();
  c["scope"] = "read admin";
  c["scp"] = json::array({"write"});
  auto r = all_keys().verify(make_hs256(secret, c), now_);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->scopes, (std::set<std::string>{"read", "admin", "write"}));
}

TEST_F(jwt_test, expired_and_not_yet_valid_tokens_are_refused) {
  auto v = all_keys();
  EXPECT_NE(refusal(v, make_hs256(secret, claims(-10))).find("expired"), std::string::npos);
  EXPECT_NE(refusal(v, make_hs256(secret, claims(0))).find("expired"), std::string::npos);
  auto c = claims();
  c["nbf"] = now_ + 600;
  EXPECT_NE(refusal(v, make_hs256(secret, c)).find("not valid yet"), std::string::npos);
  c.erase("nbf");
  for (json bad : {json("tomorrow"), json(-1), json(1e300), json(INT64_MAX)}) {
    c["exp"] = bad;
    EXPECT_NE(refusal(v, make_hs256(secret, c)).find("NumericDate"), std::string::npos) << bad;
  }
  c.erase("exp");
  EXPECT_NE(refusal(v, make_hs256(secret, c)).find("exp"), std::string::npos);
}

TEST_F(jwt_test, leeway_tolerates_clock_skew) {
  token_options o;
  o.hs256_secret = secret;
  o.leeway = std::chrono::seconds(60);
  auto v = verifier(o);
  EXPECT_TRUE(v.verify(make_hs256(secret, claims(-30)), now_).has_value());
  EXPECT_FALSE(v.verify(make_hs256(secret, claims(-90)), now_).has_value());
}

TEST_F(jwt_test, issuer_and_audience_are_checked_when_configured) {
  auto v = all_keys();
  auto c = claims();
  c["iss"] = "https://evil.test";
  EXPECT_NE(refusal(v, make_hs256(secret, c)).find("issuer"), std::string::npos);
  c = claims();
  c["aud"] = "someone-else";
  EXPECT_NE(refusal(v, make_hs256(secret, c)).find("audience"), std::string::npos);
  c["aud"] = json::array({"x", "derive"});
  EXPECT_TRUE(v.verify(make_hs256(secret, c), now_).has_value());
  c.erase("aud");
  EXPECT_FALSE(v.verify(make_hs256(secret, c), now_).has_value());
  // Not configured: not checked.
  token_options o;
  o.hs256_secret = secret;
  c["iss"] = "anyone";
  EXPECT_TRUE(verifier(o).verify(make_hs256(secret, c), now_).has_value());
}

TEST_F(jwt_test, a_token_without_sub_is_refused) {
  auto c = claims();
  c.erase("sub");
  EXPECT_NE(refusal(all_keys(), make_hs256(secret, c)).find("sub"), std::string::npos);
}

TEST_F(jwt_test, alg_none_is_refused) {
  EXPECT_NE(refusal(all_keys(), make_none(claims())).find("none"), std::string::npos);
  json header = {{"alg", "None"}};
  EXPECT_FALSE(all_keys().verify(make_hs256(secret, claims(), header), now_).has_value());
}

TEST_F(jwt_test, hs256_signed_with_the_public_key_is_refused) {
  // Algorithm confusion: the RSA public key (known to everyone) as HMAC secret.
  token_options o;
  o.public_keys_pem = rsa_->public_pem();
  auto v = verifier(o);
  auto forged = make_hs256(rsa_->public_pem(), claims());
  EXPECT_NE(refusal(v, forged).find("HS256 tokens are not accepted"), std::string::npos);
  // Also with an HS256 secret configured: the public key is never a secret.
  o.hs256_secret = secret;
  EXPECT_NE(refusal(verifier(o), forged).find("signature"), std::string::npos);
}

TEST_F(jwt_test, an_rs256_header_on_an_ec_key_and_vice_versa_is_refused) {
  token_options o;
  o.public_keys_pem = ec_->public_pem();
  EXPECT_FALSE(verifier(o).verify(make_signed(*rsa_, "RS256", claims()), now_).has_value());
  o.public_keys_pem = rsa_->public_pem();
  EXPECT_FALSE(verifier(o).verify(make_signed(*ec_, "ES256", claims()), now_).has_value());
}

TEST_F(jwt_test, es256_in_der_form_is_refused) {
  auto v = all_keys();
  EXPECT_NE(refusal(v, make_signed(*ec_, "ES256", claims(), true)).find("64 bytes"),
            std::string::npos);
}

TEST_F(jwt_test, wrong_signatures_are_refused) {
  auto v = all_keys();
  EXPECT_NE(refusal(v, make_hs256("another secret", claims())).find("signature"),
            std::string::npos);
  key_pair other_rsa(key_pair::kind::rsa);
  key_pair other_ec(key_pair::kind::ec);
  EXPECT_FALSE(v.verify(make_signed(other_rsa, "RS256", claims()), now_).has_value());
  EXPECT_FALSE(v.verify(make_signed(other_ec, "ES256", claims()), now_).has_value());
  // A payload changed after signing.
  auto token = make_hs256(secret, claims());
  auto dot1 = token.find('.');
  auto dot2 = token.find('.', dot1 + 1);
  auto c = claims();
  c["sub"] = "mallory";
  auto tampered = token.substr(0, dot1 + 1) + b64url(c.dump()) + token.substr(dot2);
  EXPECT_NE(refusal(v, tampered).find("signature"), std::string::npos);
}

TEST_F(jwt_test, malformed_tokens_are_refused_with_a_reason) {
  auto v = all_keys();
  auto good = make_hs256(secret, claims());
  EXPECT_NE(refusal(v, "").find("not a JWT"), std::string::npos);
  EXPECT_NE(refusal(v, "a.b").find("not a JWT"), std::string::npos);
  EXPECT_NE(refusal(v, good + ".x").find("not a JWT"), std::string::npos);
  EXPECT_NE(refusal(v, "!!!." + good.substr(good.find('.') + 1)).find("header"),
            std::string::npos);
  // A header that is base64url but not JSON.
  EXPECT_NE(refusal(v, b64url("not json") + good.substr(good.find('.'))).find("header"),
            std::string::npos);
  // A payload that is not JSON, correctly signed.
  std::string part = b64url(R"({"alg":"HS256"})") + "." + b64url("{broken");
  EXPECT_NE(refusal(v, part + "." + b64url(hmac_sha256(secret, part))).find("payload"),
            std::string::npos);
  EXPECT_NE(refusal(v, good.substr(0, good.rfind('.')) + ".a+b/").find("signature"),
            std::string::npos);
  json header = {{"alg", "HS256"}, {"crit", json::array({"exp"})}};
  EXPECT_NE(refusal(v, make_hs256(secret, claims(), header)).find("crit"), std::string::npos);
  EXPECT_NE(refusal(v, make_hs256(secret, claims(), {{"alg", "HS512"}})).find("HS512"),
            std::string::npos);
}

TEST_F(jwt_test, keys_are_checked_at_start) {
  EXPECT_FALSE(jwt_verifier::make({}).has_value());  // no key at all
  token_options o;
  o.public_keys_pem = "not a key";
  EXPECT_FALSE(jwt_verifier::make(o).has_value());
  o.public_keys_pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
  EXPECT_FALSE(jwt_verifier::make(o).has_value());
  o.public_keys_pem.clear();
  o.public_keys_file = "/nonexistent/keys.pem";
  auto r = jwt_verifier::make(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("/nonexistent/keys.pem"), std::string::npos);
}

// --- rules -----------------------------------------------------------------

class rules_test : public ::testing::Test {
 protected:
  std::shared_ptr<const authorizer> make(const access_rules& rules) {
    auth_options o;
    o.tokens.hs256_secret = secret;
    o.rules = rules;
    auto a = authorizer::make(o);
    EXPECT_TRUE(a.has_value()) << (a ? "" : a.error().message());
    return a ? *a : nullptr;
  }
  principal user(const std::string& sub, std::vector<std::string> scopes = {},
                 std::map<std::string, std::string> extra = {}) {
    web::token_claims c;
    c.sub = sub;
    c.strings = std::move(extra);
    c.strings["sub"] = sub;
    c.scopes.insert(scopes.begin(), scopes.end());
    c.expires = now_seconds() + 3600;
    return principal{c};
  }
  static bool allowed(const web::verdict& v) { return !v.has_value(); }
  static bool unauthorized(const web::verdict& v) { return v && v->unauthenticated; }
  static bool forbidden(const web::verdict& v) { return v && !v->unauthenticated; }
  static event_input ev(std::string type, std::string key, std::string subject = "") {
    return {std::move(type), std::move(key), std::move(subject), "null"};
  }

  principal anonymous;
};

TEST_F(rules_test, nothing_is_allowed_without_a_rule) {
  auto a = make(access_rules{});
  EXPECT_TRUE(unauthorized(a->read_key(anonymous, "docs", "x")));
  EXPECT_TRUE(forbidden(a->read_key(user("alice"), "docs", "x")));
  EXPECT_TRUE(forbidden(a->append(user("alice"), {ev("doc.put", "x")})));
  EXPECT_TRUE(forbidden(a->query(user("alice"), "docs", "count", {})));
  EXPECT_TRUE(forbidden(a->admin(user("alice"))));
  EXPECT_TRUE(unauthorized(a->admin(anonymous)));
}

TEST_F(rules_test, read_prefixes_are_substituted_from_the_token) {
  auto a = make(access_rules{}.allow_read("user", "docs", "users/{sub}/"));
  EXPECT_TRUE(allowed(a->read_key(user("alice"), "docs", "users/alice/1")));
  EXPECT_TRUE(forbidden(a->read_key(user("alice"), "docs", "users/bob/1")));
  EXPECT_TRUE(forbidden(a->read_key(user("alice"), "docs", "users/alice")));
  EXPECT_TRUE(forbidden(a->read_key(user("alice"), "other", "users/alice/1")));
  EXPECT_TRUE(unauthorized(a->read_key(anonymous, "docs", "users/alice/1")));
  auto refusal = a->read_key(user("alice"), "docs", "users/bob/1");
  EXPECT_NE(refusal->message.find("users/bob/1"), std::string::npos);
  EXPECT_NE(refusal->message.find("docs"), std::string::npos);
}

TEST_F(rules_test, a_prefix_must_lie_entirely_inside_an_allowed_one) {
  auto a = make(access_rules{}.allow_read("user", "docs", "users/{sub}/"));
  EXPECT_TRUE(allowed(a->read_prefix(user("alice"), "docs", "users/alice/")));
  EXPECT_TRUE(allowed(a->read_prefix(user("alice"), "docs", "users/alice/notes/")));
  // Wider than allowed: refused, not filtered.
  EXPECT_TRUE(forbidden(a->read_prefix(user("alice"), "docs", "users/alice")));
  EXPECT_TRUE(forbidden(a->read_prefix(user("alice"), "docs", "users/")));
  EXPECT_TRUE(forbidden(a->read_prefix(user("alice"), "docs", "")));
}

TEST_F(rules_test, claims_with_a_slash_or_missing_do_not_apply) {
  auto a = make(access_rules{}.allow_read("user", "docs", "users/{sub}/").allow_read(
      "user", "docs", "tenants/{tenant}/"));
  EXPECT_TRUE(forbidden(a->read_prefix(user("alice/x"), "docs", "users/alice/x/")));
  EXPECT_TRUE(forbidden(a->read_key(user("alice"), "docs", "tenants//a")));
  EXPECT_TRUE(allowed(a->read_key(user("alice", {}, {{"tenant", "acme"}}), "docs",
                                  "tenants/acme/a")));
}

TEST_F(rules_test, anonymous_access_is_a_rule_like_any_other) {
  auto a = make(access_rules{}.allow_read("anonymous", "docs", "public/"));
  EXPECT_TRUE(allowed(a->read_prefix(anonymous, "docs", "public/")));
  EXPECT_TRUE(forbidden(a->read_prefix(user("alice"), "docs", "public/")));  // "anonymous" only
  auto b = make(access_rules{}.allow_read("anyone", "docs", "public/"));
  EXPECT_TRUE(allowed(b->read_prefix(anonymous, "docs", "public/")));
  EXPECT_TRUE(allowed(b->read_prefix(user("alice"), "docs", "public/")));
  EXPECT_TRUE(unauthorized(b->read_prefix(anonymous, "docs", "private/")));
}

TEST_F(rules_test, appends_check_type_key_and_subject_of_every_event) {
  auto a = make(access_rules{}.allow_append("user", {"doc.*"}, "users/{sub}/", "{sub}"));
  auto alice = user("alice");
  EXPECT_TRUE(allowed(a->append(alice, {ev("doc.put", "users/alice/1", "alice")})));
  EXPECT_TRUE(forbidden(a->append(alice, {ev("doc.put", "users/alice/1", "bob")})));
  EXPECT_TRUE(forbidden(a->append(alice, {ev("doc.put", "users/alice/1")})));
  EXPECT_TRUE(forbidden(a->append(alice, {ev("user.delete", "users/alice/1", "alice")})));
  auto refusal = a->append(alice, {ev("doc.put", "users/alice/1", "alice"),
                                   ev("doc.put", "users/bob/1", "alice")});
  ASSERT_TRUE(forbidden(refusal));
  EXPECT_NE(refusal->message.find("events[1]"), std::string::npos);
  EXPECT_NE(refusal->message.find("users/bob/1"), std::string::npos);
  auto any_subject = make(access_rules{}.allow_append("user", {"doc.put"}, "users/{sub}/"));
  EXPECT_TRUE(allowed(any_subject->append(alice, {ev("doc.put", "users/alice/1", "x")})));
}

TEST_F(rules_test, queries_are_allowed_by_view_and_name) {
  auto a = make(access_rules{}.allow_query("user", "docs", "count").allow_query("anyone",
                                                                                "stats"));
  EXPECT_TRUE(allowed(a->query(user("alice"), "docs", "count", {})));
  EXPECT_TRUE(forbidden(a->query(user("alice"), "docs", "echo", {})));
  EXPECT_TRUE(unauthorized(a->query(anonymous, "docs", "count", {})));
  EXPECT_TRUE(allowed(a->query(anonymous, "stats", "anything", {})));
}

TEST_F(rules_test, query_parameters_can_be_bound_to_the_token) {
  auto a = make(access_rules{}.allow_query("user", "search", "search", {{"in", "users/{sub}/"}}));
  EXPECT_TRUE(allowed(a->query(user("alice"), "search", "search", {{"in", "users/alice/"},
                                                                     {"q", "x"}})));
  EXPECT_TRUE(allowed(a->query(user("alice"), "search", "search", {{"in", "users/alice/a"}})));
  auto refusal = a->query(user("alice"), "search", "search", {{"in", "users/"}});
  ASSERT_TRUE(forbidden(refusal));
  EXPECT_NE(refusal->message.find("in=users/"), std::string::npos) << refusal->message;
  EXPECT_TRUE(forbidden(a->query(user("alice"), "search", "search", {{"q", "x"}})));
}

TEST_F(rules_test, admin_needs_its_scope) {
  auto a = make(access_rules{}.allow_admin("scope:admin"));
  EXPECT_TRUE(allowed(a->admin(user("root", {"admin"}))));
  EXPECT_TRUE(forbidden(a->admin(user("alice", {"read"}))));
  EXPECT_TRUE(unauthorized(a->admin(anonymous)));
}

TEST_F(rules_test, the_rules_file_declares_the_same_rules) {
  auto rules = access_rules::from_json(R"({"rules": [
    {"allow": "read", "who": "user", "view": "docs", "prefix": "users/{sub}/"},
    {"allow": "append", "who": "user", "types": ["doc.put"], "prefix": "users/{sub}/",
     "subject": "{sub}"},
    {"allow": "query", "who": "anyone", "view": "docs", "query": "count"},
    {"allow": "query", "who": "user", "view": "docs", "query": "echo", "params": {"in": "{sub}/"}},
    {"allow": "admin", "who": "scope:admin"}]})");
  ASSERT_TRUE(rules.has_value()) << rules.error().message();
  auto a = make(*rules);
  EXPECT_TRUE(allowed(a->read_prefix(user("alice"), "docs", "users/alice/")));
  EXPECT_TRUE(allowed(a->append(user("alice"), {ev("doc.put", "users/alice/1", "alice")})));
  EXPECT_TRUE(forbidden(a->append(user("alice"), {ev("doc.delete", "users/alice/1", "alice")})));
  EXPECT_TRUE(allowed(a->query(anonymous, "docs", "count", {})));
  EXPECT_TRUE(allowed(a->query(user("bob"), "docs", "echo", {{"in", "bob/"}})));
  EXPECT_TRUE(forbidden(a->query(user("bob"), "docs", "echo", {{"in", "alice/"}})));
  EXPECT_TRUE(allowed(a->admin(user("root", {"admin"}))));
}

TEST_F(rules_test, bad_rules_are_refused_with_the_rule_named) {
  for (const char* text :
       {R"([])", R"({"rules": [{"allow": "write"}]})", R"({"rules": [{"allow": "read", "who": "admins"}]})",
        R"({"rules": [{"allow": "read", "prefix": "users/{sub/"}]})",
        R"({"rules": [{"allow": "read", "prefix": 3}]})",
        R"({"rules": [{"allow": "read", "perfix": "x"}]})",
        R"({"rules": [{"allow": "append", "types": []}]})",
        R"({"rules": [{"allow": "query", "params": {"in": 1}}]})"}) {
    auto r = access_rules::from_json(text);
    EXPECT_FALSE(r.has_value()) << text;
  }
  auto r = access_rules::from_json(R"({"rules": [{"allow": "read"}, {"allow": "x"}]})");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("rules[1]"), std::string::npos);
  // The C++ rules are checked when the server starts.
  auth_options o;
  o.tokens.hs256_secret = secret;
  o.rules.allow_read("users", "docs", "");
  EXPECT_FALSE(authorizer::make(o).has_value());
}

TEST_F(rules_test, bearer_tokens_are_taken_from_the_authorization_header) {
  EXPECT_EQ(web::bearer_token("Bearer abc.def.ghi"), "abc.def.ghi");
  EXPECT_EQ(web::bearer_token("bearer   abc"), "abc");
  EXPECT_FALSE(web::bearer_token("Basic dXNlcjpwYXNz").has_value());
  EXPECT_FALSE(web::bearer_token("Bearer ").has_value());
}

TEST_F(rules_test, an_invalid_token_is_a_401_never_anonymous) {
  auto a = make(access_rules{}.allow_read("anyone", "docs", ""));
  auto r = a->authenticate(std::string_view("not.a.token"), now_seconds());
  ASSERT_TRUE(std::holds_alternative<web::denial>(r));
  EXPECT_TRUE(std::get<web::denial>(r).unauthenticated);
  auto good = a->authenticate(make_hs256(secret, {{"sub", "alice"},
                                                 {"exp", now_seconds() + 60}}),
                              now_seconds());
  ASSERT_TRUE(std::holds_alternative<principal>(good));
  EXPECT_EQ(std::get<principal>(good).token->sub, "alice");
  EXPECT_TRUE(std::get<principal>(a->authenticate(std::nullopt, 0)).anonymous());
}

}  // namespace
}  // namespace derive::webtest
