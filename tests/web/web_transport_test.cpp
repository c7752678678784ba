// Transport and limits against a real server (docs/security.md): the Host
// allow-list, the Origin check of writes and upgrades, connection limits,
// append rate limits and the idempotency-key quota, TLS on the same port
// with a certificate made at test time, and its reload.
#include <filesystem>
#include <thread>
#include <vector>

#include "tests/web/web_fixture.hpp"

namespace derive::webtest {
namespace {

const std::string one_event = R"({"type":"doc.put","key":"k","data":1})";

// The value of a counter at GET /metrics (-1: not listed).
int64_t metric(uint16_t port, const std::string& name) {
  auto text = http_get(port, "/metrics").body;
  auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stoll(text.substr(at + name.size() + 2));
}

class transport_test : public web_fixture {};

TEST_F(transport_test, a_foreign_host_is_refused_with_421) {
  http_connection c(port());
  auto r = c.request({"GET", "/v1/health", "", {{"Host", "evil.example:" + std::to_string(port())}}});
  EXPECT_EQ(r.status, 421);
  EXPECT_EQ(r.body_json()["error"]["code"], "host_not_allowed");
  EXPECT_NE(r.body_json()["error"]["message"].get<std::string>().find("evil.example"),
            std::string::npos);
  EXPECT_EQ(http_connection(port()).request({"GET", "/v1/health", "", {{"Host", "localhost:1"}}}).status,
            200);
}

TEST_F(transport_test, dns_rebinding_an_upgrade_naming_the_attackers_host_and_origin_is_refused) {
  ws_connection rebound(port(), {{"Host", "evil.example:" + std::to_string(port())},
                                 {"Origin", "http://evil.example:" + std::to_string(port())}});
  EXPECT_EQ(rebound.handshake_status(), 421);
  ws_connection userinfo(port(), {{"Origin", "http://localhost:1@evil.example"}});
  EXPECT_EQ(userinfo.handshake_status(), 403);
  expect_healthy();
}

TEST_F(transport_test, writes_from_a_foreign_origin_are_refused_and_change_nothing) {
  auto r = post_events(one_event, {{"Origin", "http://evil.example"}});
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body_json()["error"]["code"], "forbidden");
  EXPECT_EQ(post_events(one_event, {{"Origin", "http://localhost:5173"}}).status, 201);
  EXPECT_EQ(post_events(one_event).status, 201) << "no Origin: not a browser";
  EXPECT_EQ(http_connection(port()).request({"GET", "/v1/health", "", {{"Origin", "http://evil.example"}}}).status,
            200) << "reads are not writes";
  EXPECT_EQ(get("/v1/events").body_json()["head"], 2);
}

class connection_limit_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override { o.max_connections = 4; }
};

TEST_F(connection_limit_test, connections_over_the_limit_get_503_and_the_server_recovers) {
  std::vector<std::unique_ptr<http_connection>> open;
  for (int i = 0; i < 4; ++i) {
    open.push_back(std::make_unique<http_connection>(port()));
    ASSERT_EQ(open.back()->get("/v1/health").status, 200);
  }
  auto refused = get("/v1/health");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.body_json()["error"]["code"], "too_many_connections");
  EXPECT_EQ(refused.header("Retry-After"), "1");
  EXPECT_NE(refused.body_json()["error"]["message"].get<std::string>().find("maximum of 4"),
            std::string::npos);
  auto ws = std::make_unique<ws_connection>(port());
  EXPECT_EQ(ws->handshake_status(), 503);
  open.clear();
  // The server notices the closes; then it accepts again.
  int status = 0;
  for (int i = 0; i < 100 && status != 200; ++i) {
    status = get("/v1/health").status;
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(status, 200);
  EXPECT_GE(metric(port(), "derive_connections_refused_total"), 2);
}

class address_limit_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override { o.max_connections_per_address = 2; }
};

TEST_F(address_limit_test, one_address_may_hold_only_its_share) {
  auto a = connect_ws();
  auto b = connect_ws();
  auto r = get("/v1/health");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body_json()["error"]["message"].get<std::string>().find("this address"),
            std::string::npos);
  a->close();
  a.reset();
  int status = 0;
  for (int i = 0; i < 100 && status != 200; ++i) {
    status = get("/v1/health").status;
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(status, 200);
}

class rate_limit_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override {
    o.append_rate = 0.01;  // one token per 100 s: the test never sees a refill
    o.append_burst = 2;
  }
};

TEST_F(rate_limit_test, appends_over_the_burst_get_429_with_retry_after) {
  EXPECT_EQ(post_events(one_event).status, 201);
  auto ws = connect_ws();
  ws->send({{"op", "append"}, {"id", "a"}, {"events", json::array({json::parse(one_event)})}});
  EXPECT_EQ(expect_op(*ws, "appended")["id"], "a");
  auto r = post_events(one_event);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.body_json()["error"]["code"], "rate_limited");
  int retry = std::stoi(r.header("Retry-After"));
  EXPECT_GE(retry, 99);
  EXPECT_LE(retry, 100);
  ws->send({{"op", "append"}, {"id", "b"}, {"events", json::array({json::parse(one_event)})}});
  auto e = expect_op(*ws, "error");
  EXPECT_EQ(e["code"], "rate_limited");
  EXPECT_EQ(e["id"], "b");
  EXPECT_GT(e["retry_after_ms"].get<uint64_t>(), 98'000u);
  // Reads are not limited; nothing was appended by the refused requests.
  EXPECT_EQ(get("/v1/events").body_json()["head"], 2);
  EXPECT_EQ(metric(port(), "derive_appends_limited_total"), 2);
}

class key_quota_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override { o.max_new_idempotency_keys = 2; }
};

TEST_F(key_quota_test, new_idempotency_keys_over_the_quota_get_429) {
  EXPECT_EQ(post_events(one_event, {{"Idempotency-Key", "k1"}}).status, 201);
  EXPECT_EQ(post_events(one_event, {{"Idempotency-Key", "k1"}}).status, 200) << "a replay is free";
  EXPECT_EQ(post_events("not json", {{"Idempotency-Key", "bad"}}).status, 400) << "so is a failure";
  EXPECT_EQ(post_events(one_event, {{"Idempotency-Key", "k2"}}).status, 201);
  auto r = post_events(one_event, {{"Idempotency-Key", "k3"}});
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.body_json()["error"]["code"], "too_many_idempotency_keys");
  EXPECT_TRUE(r.has_header("Retry-After"));
  auto ws = connect_ws();
  ws->send({{"op", "append"}, {"id", "w"}, {"idempotency_key", "k4"},
            {"events", json::array({json::parse(one_event)})}});
  EXPECT_EQ(expect_op(*ws, "error")["code"], "too_many_idempotency_keys");
  EXPECT_EQ(post_events(one_event).status, 201) << "appends without a key go on";
}

// A server with TLS, its certificate (CN "first") made at test time.
class tls_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override {
    cert_ = dir_.path() + "/cert.pem";
    key_ = dir_.path() + "/key.pem";
    ASSERT_TRUE(make_self_signed_cert(cert_, key_, "first"));
    o.tls_cert_file = cert_;
    o.tls_key_file = key_;
  }
  std::string cert_, key_;
};

TEST_F(tls_test, https_and_wss_are_served_on_the_port) {
  auto r = https_request(port(), {"POST", "/v1/events", one_event, {}});
  EXPECT_EQ(r.response.status, 201) << r.response.body;
  EXPECT_EQ(r.peer_common_name, "first");
  auto g = https_request(port(), {"GET", "/v1/views/docs/k?after=1", "", {}});
  EXPECT_EQ(g.response.status, 200);
  EXPECT_EQ(g.response.body_json()["value"], 1);
  auto m = wss_exchange(port(), {{"op", "get"}, {"id", "g"}, {"view", "docs"}, {"key", "k"}});
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["op"], "value");
  EXPECT_EQ((*m)["value"], 1);
}

TEST_F(tls_test, plain_http_on_the_tls_port_is_told_to_use_https) {
  auto r = get("/v1/health");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body_json()["error"]["code"], "tls_required");
  EXPECT_EQ(post_events(one_event).status, 400);
  EXPECT_EQ(https_request(port(), {"GET", "/v1/events", "", {}}).response.body_json()["head"], 0);
}

TEST_F(tls_test, a_reload_takes_a_new_certificate_and_a_bad_one_keeps_the_old) {
  ASSERT_TRUE(make_self_signed_cert(cert_, key_, "second"));
  ASSERT_TRUE(server_->reload_tls().is_ok());
  EXPECT_EQ(https_request(port(), {"GET", "/v1/health", "", {}}).peer_common_name, "second");

  write_file(cert_, "not a certificate");
  auto st = server_->reload_tls();
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find(cert_), std::string::npos) << st.message();
  auto r = https_request(port(), {"GET", "/v1/health", "", {}});
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.peer_common_name, "second");

  // A key that does not belong to the certificate.
  std::string other_key = dir_.path() + "/other.pem";
  ASSERT_TRUE(make_self_signed_cert(dir_.path() + "/other-cert.pem", other_key, "other"));
  ASSERT_TRUE(make_self_signed_cert(cert_, key_, "third"));
  std::filesystem::copy_file(other_key, key_, std::filesystem::copy_options::overwrite_existing);
  st = server_->reload_tls();
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find(key_), std::string::npos) << st.message();
  EXPECT_EQ(https_request(port(), {"GET", "/v1/health", "", {}}).peer_common_name, "second");
}

TEST(tls_start, a_missing_certificate_fails_start_with_the_file_name) {
  temp_dir dir;
  runtime_options ro;
  ro.data_dir = dir.path() + "/data";
  runtime rt(ro);
  ASSERT_TRUE(rt.start().is_ok());
  web::server_options o;
  o.port = 0;
  o.tls_cert_file = dir.path() + "/missing.pem";
  o.tls_key_file = dir.path() + "/missing-key.pem";
  web::server srv(rt, o);
  auto st = srv.start();
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("missing.pem"), std::string::npos) << st.message();
  o.tls_key_file.clear();
  EXPECT_EQ(web::server(rt, o).start().code(), errc::invalid_parameter);
  web::server_options plain;
  plain.port = 0;
  EXPECT_EQ(web::server(rt, plain).reload_tls().code(), errc::invalid_parameter);
  rt.stop();
}

}  // namespace
}  // namespace derive::webtest
