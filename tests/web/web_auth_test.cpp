// Tokens and access rules over HTTP and WebSocket (docs/security.md,
// docs/protocol.md "Tokens"), against a real runtime and server.
#include <thread>

#include "tests/web/token_maker.hpp"
#include "tests/web/web_fixture.hpp"

namespace derive::webtest {
namespace {

const std::string secret = "the shared secret of the auth tests, 32+ bytes";

class auth_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override {
    web::auth_options auth;
    auth.tokens.hs256_secret = secret;
    auth.tokens.issuer = "https://id.test";
    auth.rules.allow_read("user", "docs", "users/{sub}/")
        .allow_read("anyone", "docs", "public/")
        .allow_append("user", {"doc.put", "doc.delete"}, "users/{sub}/")
        .allow_query("user", "docs", "count")
        .allow_admin("scope:admin");
    o.auth = auth;
  }

  static std::string token(const std::string& sub, int64_t expires_in = 3600,
                           const std::string& scope = "") {
    json c = {{"sub", sub}, {"iss", "https://id.test"}, {"exp", now_seconds() + expires_in}};
    if (!scope.empty()) c["scope"] = scope;
    return make_hs256(secret, c);
  }
  static std::map<std::string, std::string> bearer(const std::string& t) {
    return {{"Authorization", "Bearer " + t}};
  }

  http_response get_as(const std::string& target, const std::string& t) {
    http_connection c(port());
    return c.request({"GET", target, "", t.empty() ? std::map<std::string, std::string>{}
                                                   : bearer(t)});
  }
  http_response post_as(const json& body, const std::string& t) {
    return http_post(port(), "/v1/events", body.dump(),
                     t.empty() ? std::map<std::string, std::string>{} : bearer(t));
  }
  static json put_event(const std::string& key, const json& data = {{"title", "t"}}) {
    return {{"type", "doc.put"}, {"key", key}, {"data", data}};
  }
  // Appends as `sub` and returns the offset.
  uint64_t put_as(const std::string& sub, const std::string& key) {
    auto r = post_as(put_event(key), token(sub));
    EXPECT_EQ(r.status, 201) << r.body;
    return r.body_json().value("offset", uint64_t{0});
  }
  static std::string code(const http_response& r) {
    return r.body_json()["error"].value("code", "");
  }
  static std::string message(const http_response& r) {
    return r.body_json()["error"].value("message", "");
  }
};

// --- HTTP -------------------------------------------------------------------

TEST_F(auth_test, a_read_without_a_token_is_401_with_www_authenticate) {
  auto r = get_as("/v1/views/docs/users/alice/1", "");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(code(r), "unauthorized");
  EXPECT_EQ(r.header("WWW-Authenticate"), "Bearer realm=\"derive\"");
  EXPECT_NE(message(r).find("needs a token"), std::string::npos);
}

TEST_F(auth_test, an_invalid_or_expired_token_is_401_saying_which) {
  auto r = get_as("/v1/views/docs/users/alice/1", token("alice", -60));
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(message(r).find("expired"), std::string::npos) << r.body;
  EXPECT_NE(r.header("WWW-Authenticate").find("invalid_token"), std::string::npos);
  r = get_as("/v1/views/docs/users/alice/1", make_hs256("wrong secret", {{"sub", "alice"}}));
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(message(r).find("signature"), std::string::npos) << r.body;
  http_connection c(port());
  r = c.request({"GET", "/v1/views/docs/users/alice/1", "", {{"Authorization", "Basic eDp5"}}});
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(message(r).find("Bearer"), std::string::npos) << r.body;
}

TEST_F(auth_test, a_user_reads_own_keys_and_is_refused_others_with_403) {
  uint64_t at = put_as("alice", "users/alice/1");
  put_as("bob", "users/bob/1");
  auto r = get_as("/v1/views/docs/users/alice/1?after=" + std::to_string(at + 1), token("alice"));
  EXPECT_EQ(r.status, 200) << r.body;
  r = get_as("/v1/views/docs/users/bob/1", token("alice"));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(code(r), "forbidden");
  EXPECT_NE(message(r).find("users/bob/1"), std::string::npos) << r.body;
  EXPECT_NE(message(r).find("docs"), std::string::npos) << r.body;
  EXPECT_FALSE(r.has_header("WWW-Authenticate"));
}

TEST_F(auth_test, a_range_must_lie_inside_an_allowed_prefix) {
  uint64_t at = put_as("alice", "users/alice/1");
  put_as("bob", "users/bob/1");
  auto r = get_as("/v1/views/docs?prefix=users/alice/&after=" + std::to_string(at + 1),
                  token("alice"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body_json()["items"].size(), 1u);
  EXPECT_EQ(get_as("/v1/views/docs?prefix=users/", token("alice")).status, 403);
  EXPECT_EQ(get_as("/v1/views/docs", token("alice")).status, 403);  // never filtered
}

TEST_F(auth_test, appends_are_checked_event_by_event_and_a_refusal_appends_nothing) {
  uint64_t at = put_as("alice", "users/alice/1");
  json batch = json::array({put_event("users/alice/2"), put_event("users/bob/2")});
  auto r = post_as(batch, token("alice"));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(message(r).find("events[1]"), std::string::npos) << r.body;
  r = post_as(put_event("users/alice/3"), "");
  EXPECT_EQ(r.status, 401);
  r = post_as({{"type", "user.delete"}, {"key", "users/alice/1"}}, token("alice"));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(message(r).find("user.delete"), std::string::npos) << r.body;
  // Nothing of the refused requests reached the log.
  auto head = get_as("/v1/events?from=" + std::to_string(at + 1), token("root", 3600, "admin"));
  ASSERT_EQ(head.status, 200) << head.body;
  EXPECT_EQ(head.body_json()["events"].size(), 0u);
  EXPECT_EQ(head.body_json()["head"], at);
}

TEST_F(auth_test, anonymous_access_is_what_the_rules_allow) {
  // "anyone" may read public/ (no rule lets anyone write there: the key is
  // absent, and the read is allowed).
  auto r = get_as("/v1/views/docs/public/readme", "");
  EXPECT_EQ(r.status, 404) << r.body;  // allowed, no value
  EXPECT_EQ(code(r), "not_found");
  EXPECT_EQ(get_as("/v1/views/docs?prefix=public/", "").status, 200);
  EXPECT_EQ(get_as("/v1/views/docs?prefix=public/", token("alice")).status, 200);
}

TEST_F(auth_test, queries_need_a_rule) {
  EXPECT_EQ(get_as("/v1/query/docs/count", token("alice")).status, 200);
  EXPECT_EQ(get_as("/v1/query/docs/echo", token("alice")).status, 403);
  EXPECT_EQ(get_as("/v1/query/docs/count", "").status, 401);
}

TEST_F(auth_test, admin_endpoints_need_the_admin_scope) {
  for (std::string target : {"/metrics", "/v1/views", "/v1/events"}) {
    EXPECT_EQ(get_as(target, "").status, 401) << target;
    EXPECT_EQ(get_as(target, token("alice")).status, 403) << target;
    EXPECT_EQ(get_as(target, token("root", 3600, "admin")).status, 200) << target;
  }
  // Health stays public (load balancers), and so do static files.
  EXPECT_EQ(get_as("/v1/health", "").status, 200);
  EXPECT_EQ(get_as("/app.js", "").status, 200);
}

TEST_F(auth_test, a_server_with_bad_auth_options_does_not_start) {
  web::server_options o;
  o.port = 0;
  o.auth = web::auth_options{};  // no key
  web::server s(*rt_, o);
  auto st = s.start();
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("secret"), std::string::npos) << st.message();
  o.auth->tokens.hs256_secret = secret;
  o.auth->rules.allow_read("admins", "docs", "");
  web::server s2(*rt_, o);
  EXPECT_FALSE(s2.start().is_ok());
}

// --- WebSocket --------------------------------------------------------------

json sub(const std::string& id, const std::string& prefix) {
  return {{"op", "subscribe"}, {"id", id}, {"view", "docs"}, {"prefix", prefix}};
}

TEST_F(auth_test, a_websocket_with_a_bearer_header_sees_only_its_own_prefix) {
  auto c = connect_ws(bearer(token("alice")));
  c->send(sub("mine", "users/alice/"));
  expect_op(*c, "snapshot");
  c->send(sub("theirs", "users/bob/"));
  auto e = expect_op(*c, "error");
  EXPECT_EQ(e["id"], "theirs");
  EXPECT_EQ(e["code"], "forbidden");
  EXPECT_NE(e["message"].get<std::string>().find("users/bob/"), std::string::npos);
  c->send({{"op", "subscribe"}, {"id", "all"}, {"view", "docs"}, {"prefix", ""}});
  EXPECT_EQ(expect_op(*c, "error")["code"], "forbidden");
  c->send({{"op", "get"}, {"id", "g"}, {"view", "docs"}, {"key", "users/bob/1"}});
  EXPECT_EQ(expect_op(*c, "error")["code"], "forbidden");
  c->send({{"op", "append"}, {"id", "a"}, {"events", json::array({put_event("users/bob/1")})}});
  EXPECT_EQ(expect_op(*c, "error")["code"], "forbidden");
  // Bob's write does not reach Alice; her own does.
  put_as("bob", "users/bob/1");
  c->send({{"op", "append"}, {"id", "a2"}, {"events", json::array({put_event("users/alice/1")})}});
  std::vector<json> seen;
  for (int i = 0; i < 2; ++i) seen.push_back(*c->read());
  bool appended = false, changed = false;
  for (auto& m : seen) {
    appended = appended || m["op"] == "appended";
    if (m["op"] == "changes") {
      changed = true;
      for (auto& item : m["items"]) EXPECT_EQ(item["key"], "users/alice/1");
    }
  }
  EXPECT_TRUE(appended && changed);
}

TEST_F(auth_test, a_browser_sends_its_token_as_a_subprotocol) {
  auto c = connect_ws({{"Sec-WebSocket-Protocol", "derive.v1, derive.token." + token("alice")}});
  c->send(sub("mine", "users/alice/"));
  expect_op(*c, "snapshot");
  ws_connection bad(port(), {{"Sec-WebSocket-Protocol",
                              "derive.v1, derive.token." + token("alice", -60)}});
  EXPECT_EQ(bad.handshake_status(), 401);
}

TEST_F(auth_test, an_anonymous_connection_authenticates_with_an_auth_message) {
  auto c = connect_ws();
  c->send(sub("mine", "users/alice/"));
  EXPECT_EQ(expect_op(*c, "error")["code"], "unauthorized");
  c->send({{"op", "auth"}, {"id", "t0"}, {"token", "garbage"}});
  auto e = expect_op(*c, "error");
  EXPECT_EQ(e["code"], "unauthorized");
  EXPECT_NE(e["message"].get<std::string>().find("JWT"), std::string::npos);
  c->send({{"op", "auth"}, {"id", "t1"}, {"token", token("alice")}});
  auto ok = expect_op(*c, "authenticated");
  EXPECT_EQ(ok["id"], "t1");
  EXPECT_EQ(ok["sub"], "alice");
  c->send(sub("mine", "users/alice/"));
  expect_op(*c, "snapshot");
  // One connection, one subject.
  c->send({{"op", "auth"}, {"id", "t2"}, {"token", token("bob")}});
  EXPECT_EQ(expect_op(*c, "error")["code"], "forbidden");
}

TEST_F(auth_test, an_expired_token_ends_the_subscriptions_with_token_expired) {
  auto c = connect_ws(bearer(token("alice", 2)));
  c->send(sub("mine", "users/alice/"));
  expect_op(*c, "snapshot");
  auto e = expect_op(*c, "error", std::chrono::seconds(10));
  EXPECT_EQ(e["id"], "mine");
  EXPECT_EQ(e["code"], "token_expired");
  // Later writes are not delivered, and the connection is anonymous now.
  uint64_t at = put_as("alice", "users/alice/9");
  // The view holds the write before the new subscription's snapshot is taken.
  auto held = get_as("/v1/views/docs/users/alice/9?after=" + std::to_string(at), token("alice"));
  EXPECT_EQ(held.status, 200) << held.body;
  c->send(sub("again", "users/alice/"));
  EXPECT_EQ(expect_op(*c, "error")["code"], "unauthorized");
  // A new token restores access on the same connection.
  c->send({{"op", "auth"}, {"id", "t"}, {"token", token("alice")}});
  expect_op(*c, "authenticated");
  c->send(sub("again", "users/alice/"));
  EXPECT_EQ(expect_op(*c, "snapshot")["items"].size(), 1u);
}

TEST_F(auth_test, a_renewed_token_keeps_the_subscriptions) {
  auto c = connect_ws(bearer(token("alice", 2)));
  c->send(sub("mine", "users/alice/"));
  expect_op(*c, "snapshot");
  c->send({{"op", "auth"}, {"id", "renew"}, {"token", token("alice", 3600)}});
  expect_op(*c, "authenticated");
  std::this_thread::sleep_for(std::chrono::seconds(4));  // past the first token's exp
  put_as("alice", "users/alice/1");
  auto m = expect_op(*c, "changes");
  EXPECT_EQ(m["id"], "mine");
}

// Without server_options::auth nothing changes: no token needed, auth refused.
class no_auth_test : public web_fixture {};

TEST_F(no_auth_test, the_auth_message_is_refused_when_tokens_are_off) {
  auto c = connect_ws();
  c->send({{"op", "auth"}, {"id", "t"}, {"token", "x.y.z"}});
  auto e = expect_op(*c, "error");
  EXPECT_EQ(e["code"], "invalid_parameter");
  EXPECT_EQ(get("/metrics").status, 200);
}

}  // namespace
}  // namespace derive::webtest
