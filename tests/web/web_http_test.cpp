// The HTTP API of protocol.md against a real runtime and server.
#include <algorithm>
#include <atomic>
#include <future>
#include <regex>
#include <sstream>
#include <set>
#include <thread>

#include "tests/web/web_fixture.hpp"
#include "web/metrics.hpp"
#include "web/router.hpp"

namespace derive::webtest {
namespace {

class http_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override {
    o.max_body_bytes = 64 * 1024;
    o.max_header_bytes = 4096;
  }

  // Expects the error body of protocol.md with `code`.
  static void expect_error(const http_response& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    auto body = r.body_json();
    ASSERT_TRUE(body.contains("error")) << r.body;
    EXPECT_EQ(body["error"].value("code", ""), code) << r.body;
    EXPECT_FALSE(body["error"].value("message", "").empty()) << r.body;
    EXPECT_EQ(r.header("content-type"), "application/json");
  }

  static std::string event(const std::string& key, int n = 0) {
    return json{{"type", "doc.put"}, {"key", key}, {"data", {{"n", n}}}}.dump();
  }
};

// --- POST /v1/events ----------------------------------------------------------

TEST_F(http_test, one_event_is_appended_at_the_next_offset) {
  auto r = post_events(event("a"));
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body_json(), json::parse(R"({"offset":1})"));
  EXPECT_EQ(post_events(event("b")).body_json(), json::parse(R"({"offset":2})"));
}

TEST_F(http_test, an_array_is_appended_at_consecutive_offsets) {
  put("x", 1);
  auto r = post_events("[" + event("a") + "," + event("b") + "," + event("c") + "]");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body_json(), json::parse(R"({"offsets":[2,3,4]})"));
}

TEST_F(http_test, bad_bodies_are_refused_and_append_nothing) {
  expect_error(post_events("{not json"), 400, "invalid_json");
  expect_error(post_events(""), 400, "invalid_json");
  expect_error(post_events("[]"), 400, "invalid_event");
  expect_error(post_events("42"), 400, "invalid_event");
  expect_error(post_events(R"({"type":"bad type"})"), 400, "invalid_event");
  expect_error(post_events(R"({"type":"t","extra":1})"), 400, "invalid_event");
  auto array = post_events("[" + event("a") + R"(,{"key":"no type"}])");
  expect_error(array, 400, "invalid_event");
  EXPECT_NE(array.body_json()["error"]["message"].get<std::string>().find("1"), std::string::npos);
  std::string many = "[";
  for (int i = 0; i < 1001; ++i) many += (i ? "," : "") + std::string(R"({"type":"t"})");
  expect_error(post_events(many + "]"), 400, "invalid_event");
  std::string deep = R"({"type":"t","data":)" + std::string(300, '[') + std::string(300, ']') + "}";
  expect_error(post_events(deep), 400, "invalid_json");
  EXPECT_EQ(get("/v1/events").body_json()["head"], 0);
  expect_healthy();
}

TEST_F(http_test, numbers_are_kept_exactly_or_refused_and_duplicates_are_refused) {
  auto big = post_events(R"([{"type":"t","data":{"amount":18446744073709551616}}])");
  expect_error(big, 400, "invalid_event");
  EXPECT_EQ(big.body_json()["error"]["message"].get<std::string>().rfind(
                "events[0].data.amount is an integer beyond 64 bits", 0),
            0u)
      << big.body;
  expect_error(post_events(R"({"type":"t","data":1.00000000000000001})"), 400, "invalid_event");
  auto dup = post_events(R"({"type":"t","data":{"a":1,"a":2}})");
  expect_error(dup, 400, "invalid_event");
  EXPECT_EQ(dup.body_json()["error"]["message"].get<std::string>().rfind(
                "event.data.a appears twice", 0),
            0u);
  EXPECT_EQ(get("/v1/events").body_json()["head"], 0);
  // What passes comes back as the same numbers.
  std::string kept = R"({"type":"t","data":[18446744073709551615,-9223372036854775808,0.1,2.5e-8]})";
  ASSERT_EQ(post_events(kept).status, 201);
  auto events = get("/v1/events").body_json()["events"];
  EXPECT_EQ(events[0]["data"], json::parse(kept)["data"]);
  EXPECT_EQ(events[0]["data"][0].get<uint64_t>(), 18446744073709551615u);
  expect_healthy();
}

TEST_F(http_test, bodies_must_be_json) {
  expect_error(post_events(event("a"), {{"Content-Type", "text/plain"}}), 415,
               "unsupported_media_type");
  expect_error(post_events(event("a"), {{"Content-Type", "application/jsonx"}}), 415,
               "unsupported_media_type");
  EXPECT_EQ(post_events(event("a"), {{"Content-Type", "Application/JSON; charset=utf-8"}}).status,
            201);
  http_connection c(port());
  auto no_type = c.raw("POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}");
  ASSERT_TRUE(no_type);
  expect_error(*no_type, 415, "unsupported_media_type");
  expect_healthy();
}

TEST_F(http_test, a_body_over_the_limit_is_413) {
  std::string big = R"({"type":"t","data":")" + std::string(70 * 1024, 'x') + "\"}";
  expect_error(post_events(big), 413, "payload_too_large");
  EXPECT_EQ(get("/v1/events").body_json()["head"], 0);
  expect_healthy();
}

TEST_F(http_test, chunked_requests_are_411) {
  http_connection c(port());
  auto r = c.raw(
      "POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n");
  ASSERT_TRUE(r);
  expect_error(*r, 411, "length_required");
  EXPECT_TRUE(c.closed_by_peer());
  expect_healthy();
}

TEST_F(http_test, a_post_without_content_length_is_411) {
  http_connection c(port());
  auto r = c.raw("POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\r\n");
  ASSERT_TRUE(r);
  expect_error(*r, 411, "length_required");
  expect_healthy();
}

TEST_F(http_test, oversized_and_malformed_headers_are_refused) {
  http_connection c(port());
  auto big = c.raw("GET /v1/health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + std::string(8000, 'a') +
                   "\r\n\r\n");
  ASSERT_TRUE(big);
  expect_error(*big, 431, "header_too_large");
  http_connection c2(port());
  auto junk = c2.raw("THIS IS NOT HTTP\r\n\r\n");
  ASSERT_TRUE(junk);
  expect_error(*junk, 400, "bad_request");
  expect_healthy();
}

TEST_F(http_test, ambiguous_framing_is_400_naming_the_header_and_closes) {
  const std::string post = "POST /v1/events HTTP/1.1\r\nContent-Type: application/json\r\n";
  const std::string body = R"({"type":"t"})";
  const std::string length = "Content-Length: " + std::to_string(body.size()) + "\r\n";
  struct attack {
    std::string request;
    std::string named;  // in the message
  };
  std::vector<attack> attacks = {
      {post + "Host: x\r\nTransfer-Encoding: xchunked\r\n" + length + "\r\n" + body,
       "Transfer-Encoding"},
      {post + "Host: x\r\nTransfer-Encoding: identity\r\n" + length + "\r\n" + body,
       "Transfer-Encoding"},
      {post + "Host: x\r\nX-Note: a\r\n b\r\n" + length + "\r\n" + body, "line folding"},
      {post + length + "\r\n" + body, "Host"},
      {post + "Host: x\r\nHost: y\r\n" + length + "\r\n" + body, "Host"},
      {post + "Host: x\r\nIdempotency-Key: a\r\nIdempotency-Key: b\r\n" + length + "\r\n" +
           body,
       "Idempotency-Key"},
  };
  for (const auto& a : attacks) {
    http_connection c(port());
    auto r = c.raw(a.request);
    ASSERT_TRUE(r) << a.request;
    expect_error(*r, 400, "bad_request");
    EXPECT_NE(r->body_json()["error"]["message"].get<std::string>().find(a.named),
              std::string::npos)
        << r->body;
    EXPECT_TRUE(c.closed_by_peer()) << a.request;
  }
  EXPECT_EQ(get("/v1/events").body_json()["head"], 0);
  // HTTP/1.0 may leave Host out.
  http_connection c(port());
  auto old = c.raw("GET /v1/health HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->status, 200);
  expect_healthy();
}

// The reply's head, field by field as Beast's serializer wrote it before the
// server formatted it itself: status line, Server, Content-Type, the reply's
// own fields, Connection when it differs from the version's default,
// Content-Length; HEAD gets the head only.
TEST_F(http_test, a_reply_head_has_its_fields_in_a_fixed_order) {
  const std::string body = get("/v1/nothing").body;
  auto head = [&](std::string status_line, std::string connection) {
    return status_line + "\r\nServer: derive\r\nContent-Type: application/json\r\n" + connection +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  };
  http_connection c(port());
  ASSERT_TRUE(c.write("GET /v1/nothing HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto want = head("HTTP/1.0 404 Not Found", "Connection: keep-alive\r\n") + body;
  EXPECT_EQ(c.read_bytes(want.size()), want);
  ASSERT_TRUE(c.write("GET /v1/nothing HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  want = head("HTTP/1.1 404 Not Found", "") + body;
  EXPECT_EQ(c.read_bytes(want.size()), want);
  ASSERT_TRUE(c.write("DELETE /v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  auto refused = c.read_bytes(110);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->rfind("HTTP/1.1 405 Method Not Allowed\r\nServer: derive\r\n"
                           "Content-Type: application/json\r\nAllow: GET, HEAD, POST\r\n", 0), 0u)
      << *refused;
  http_connection last(port());
  ASSERT_TRUE(last.write("HEAD /v1/nothing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
  want = head("HTTP/1.1 404 Not Found", "Connection: close\r\n");
  EXPECT_EQ(last.read_bytes(want.size()), want);
  EXPECT_TRUE(last.closed_by_peer());
}

TEST_F(http_test, a_client_expecting_100_continue_gets_it_before_sending_the_body) {
  http_connection c(port());
  std::string body = event("e");
  auto interim = c.raw("POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                       "Expect: 100-continue\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n");
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  auto final_answer = c.raw(body);
  ASSERT_TRUE(final_answer);
  EXPECT_EQ(final_answer->status, 201);
}

// --- idempotency ------------------------------------------------------------------

TEST_F(http_test, a_retry_with_the_same_key_and_body_replays_the_answer) {
  auto first = post_events(event("a"), {{"Idempotency-Key", "k-1"}});
  EXPECT_EQ(first.status, 201);
  EXPECT_FALSE(first.has_header("Idempotent-Replayed"));
  // The same JSON value with other whitespace and member order.
  auto retry = post_events(R"( { "data" : {"n":0}, "key":"a", "type":"doc.put" } )",
                           {{"Idempotency-Key", "k-1"}});
  EXPECT_EQ(retry.status, 200);
  EXPECT_EQ(retry.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(retry.body_json(), first.body_json());
  EXPECT_EQ(get("/v1/events").body_json()["head"], 1);
}

TEST_F(http_test, an_array_retry_replays_its_offsets) {
  std::string body = "[" + event("a") + "," + event("b") + "]";
  auto first = post_events(body, {{"Idempotency-Key", "batch"}});
  auto retry = post_events(body, {{"Idempotency-Key", "batch"}});
  EXPECT_EQ(retry.status, 200);
  EXPECT_EQ(retry.body_json(), json::parse(R"({"offsets":[1,2]})"));
}

TEST_F(http_test, a_key_reused_with_another_body_is_422) {
  post_events(event("a"), {{"Idempotency-Key", "k"}});
  expect_error(post_events(event("b"), {{"Idempotency-Key", "k"}}), 422,
               "idempotency_key_reused");
  EXPECT_EQ(get("/v1/events").body_json()["head"], 1);
}

TEST_F(http_test, malformed_keys_are_400) {
  for (std::string key : {std::string("has space"), std::string(129, 'k'), std::string("k\xc3\xa9")}) {
    expect_error(post_events(event("a"), {{"Idempotency-Key", key}}), 400,
                 "invalid_idempotency_key");
  }
  http_connection c(port());
  auto empty = c.raw(
      "POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
      "Idempotency-Key: \r\nContent-Length: 2\r\n\r\n{}");
  ASSERT_TRUE(empty);
  expect_error(*empty, 400, "invalid_idempotency_key");
  EXPECT_EQ(post_events(event("a"), {{"Idempotency-Key", std::string(128, 'k')}}).status, 201);
}

TEST_F(http_test, a_key_with_control_characters_is_invalid_idempotency_key) {
  // HTTP parsers refuse such a header before the key is seen; the answer still
  // names the key, and nothing is appended.
  for (std::string key : {std::string("a\x01b"), std::string("a\x7f" "b")}) {
    http_connection c(port());
    auto r = c.raw("POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                   "Idempotency-Key: " + key + "\r\nContent-Length: 2\r\n\r\n{}");
    ASSERT_TRUE(r);
    expect_error(*r, 400, "invalid_idempotency_key");
  }
  http_connection c(port());
  auto other = c.raw("GET /v1/health HTTP/1.1\r\nHost: localhost\r\nX-Other: a\x01" "b\r\n\r\n");
  ASSERT_TRUE(other);
  expect_error(*other, 400, "bad_request");
  EXPECT_EQ(get("/v1/events").body_json()["head"], 0);
}

TEST_F(http_test, a_failed_request_leaves_no_key_behind) {
  expect_error(post_events(R"({"type":"t","bad":1})", {{"Idempotency-Key", "once"}}), 400,
               "invalid_event");
  EXPECT_EQ(post_events(event("a"), {{"Idempotency-Key", "once"}}).status, 201);
}

TEST_F(http_test, concurrent_requests_with_one_key_append_once) {
  constexpr int n = 8;
  std::vector<std::future<http_response>> answers;
  for (int i = 0; i < n; ++i) {
    answers.push_back(std::async(std::launch::async, [&] {
      return post_events(event("same"), {{"Idempotency-Key", "race"}});
    }));
  }
  int created = 0;
  std::set<std::string> bodies;
  for (auto& a : answers) {
    auto r = a.get();
    EXPECT_TRUE(r.status == 201 || r.status == 200) << r.body;
    created += r.status == 201;
    bodies.insert(r.body_json().dump());
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(bodies.size(), 1u);
  EXPECT_EQ(get("/v1/events").body_json()["head"], 1);
}

// --- GET /v1/events ---------------------------------------------------------------

TEST_F(http_test, the_log_is_read_in_pages) {
  for (int i = 0; i < 5; ++i) put("k" + std::to_string(i), i);
  auto all = get("/v1/events").body_json();
  ASSERT_EQ(all["events"].size(), 5u);
  EXPECT_EQ(all["events"][0]["offset"], 1);
  EXPECT_EQ(all["events"][0]["type"], "doc.put");
  EXPECT_EQ(all["events"][0]["key"], "k0");
  EXPECT_EQ(all["events"][0]["data"], 0);
  EXPECT_TRUE(all["events"][0]["ts"].is_number_integer());
  EXPECT_EQ(all["next"], 6);
  EXPECT_EQ(all["head"], 5);
  auto page = get("/v1/events?from=2&limit=2").body_json();
  ASSERT_EQ(page["events"].size(), 2u);
  EXPECT_EQ(page["events"][1]["offset"], 3);
  EXPECT_EQ(page["next"], 4);
  auto past = get("/v1/events?from=99").body_json();
  EXPECT_TRUE(past["events"].empty());
  EXPECT_EQ(past["next"], 99);
  EXPECT_EQ(get("/v1/events?from=0&limit=10000").status, 200);
}

TEST_F(http_test, a_read_past_the_end_reports_the_real_head) {
  put("a", 1);
  put("b", 2);
  auto at_end = get("/v1/events?from=3").body_json();
  EXPECT_EQ(at_end, json::parse(R"({"events":[],"next":3,"head":2})"));
  auto far = get("/v1/events?from=1000").body_json();
  EXPECT_EQ(far, json::parse(R"({"events":[],"next":1000,"head":2})"));
  auto from_0 = get("/v1/events?from=0&limit=1").body_json();
  EXPECT_EQ(from_0["next"], 2);
  EXPECT_EQ(from_0["events"][0]["offset"], 1);
}

TEST_F(http_test, bad_log_parameters_are_400) {
  for (const char* q : {"from=abc", "from=-1", "from=", "limit=0", "limit=10001", "limit=1.5",
                        "from=%zz"}) {
    expect_error(get(std::string("/v1/events?") + q), 400, "invalid_parameter");
  }
  expect_healthy();
}

// --- views ----------------------------------------------------------------------

TEST_F(http_test, views_are_listed_with_offset_lag_and_status) {
  uint64_t o = put("a", 1);
  view_state("docs", o);
  auto views = get("/v1/views").body_json()["views"];
  ASSERT_EQ(views.size(), 3u);
  std::set<std::string> names;
  for (auto& v : views) {
    names.insert(v["name"].get<std::string>());
    EXPECT_TRUE(v.contains("version"));
    EXPECT_TRUE(v.contains("offset"));
    EXPECT_TRUE(v.contains("lag"));
    EXPECT_TRUE(v.contains("status"));
    EXPECT_FALSE(v.contains("error"));
  }
  EXPECT_EQ(names, (std::set<std::string>{"docs", "titles", "recent"}));
}

TEST_F(http_test, views_list_their_versions_and_admin_routes_switch_them) {
  uint64_t o = put("a", 1);
  view_state("docs", o);
  auto views = get("/v1/views").body_json()["views"];
  for (auto& v : views) {
    ASSERT_EQ(v["versions"].size(), 1u) << v.dump();
    EXPECT_EQ(v["versions"][0]["role"], "serving");
    EXPECT_EQ(v["versions"][0]["version"], v["version"]);
    EXPECT_TRUE(v["versions"][0].contains("events_per_second"));
    EXPECT_TRUE(v["versions"][0].contains("eta_seconds"));
    EXPECT_TRUE(v["pinned"].is_null()) << v.dump();
  }
  auto admin = [&](const std::string& target) { return http_post(port(), target, "{}"); };
  auto r = admin("/v1/admin/views/docs/cutover?version=1");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body_json()["serving"], 1);
  auto pinned = get("/v1/views").body_json();  // alive through the loop
  for (auto& v : pinned["views"]) {
    if (v["name"] != "docs") continue;
    EXPECT_EQ(v["pinned"], 1) << v.dump();
    EXPECT_EQ(v["versions"][0]["pinned"], true) << v.dump();
  }
  // The served version: a fresh copy (generation 1) is built beside it, then served.
  r = admin("/v1/admin/views/docs/rebuild?version=1");
  EXPECT_EQ(r.status, 202) << r.body;
  bool copy_served = false;
  for (int i = 0; i < 1000 && !copy_served; ++i) {
    auto now = get("/v1/views").body_json();
    for (auto& v : now["views"])
      for (auto& ver : v["versions"])
        if (v["name"] == "docs" && ver["role"] == "serving" && ver["generation"] == 1)
          copy_served = true;
    if (!copy_served) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(copy_served);
  EXPECT_EQ(get("/v1/views/docs/a").body_json()["value"], 1);
  expect_error(admin("/v1/admin/views/docs/rebuild?version=9"), 404, "not_found");
  expect_error(admin("/v1/admin/views/docs/rollback"), 400, "invalid_parameter");
  expect_error(admin("/v1/admin/views/docs/cutover"), 400, "invalid_parameter");
  expect_error(admin("/v1/admin/views/nope/cutover?version=1"), 404, "unknown_view");
  expect_error(get("/v1/admin/views/docs/cutover?version=1"), 405, "method_not_allowed");
  expect_error(admin("/v1/admin/nothing"), 404, "not_found");
  auto metrics = get("/metrics").body;
  EXPECT_NE(metrics.find("derive_view_version_offset{view=\"docs\",version=\"1\","
                         "role=\"serving\",generation=\"1\"}"),
            std::string::npos);
  // The derived view's copy is named by the upstream copy it reads; retired
  // copies have no series (two of one version would share their labels).
  EXPECT_NE(metrics.find("derive_view_version_offset{view=\"titles\",version=\"1\","
                         "role=\"serving\",upstream=\"docs/1.g1\"}"),
            std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("role=\"retired\""), std::string::npos) << metrics;
  expect_healthy();
}

TEST_F(http_test, a_key_is_read_with_the_views_offset) {
  uint64_t o = put("doc-1", {{"title", "T"}});
  auto r = get("/v1/views/docs/doc-1?after=" + std::to_string(o));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body_json(), (json{{"key", "doc-1"}, {"value", {{"title", "T"}}}, {"offset", o}}));
}

TEST_F(http_test, a_missing_key_is_404_not_found_with_the_offset) {
  uint64_t o = put("a", 1);
  auto r = get("/v1/views/docs/missing?after=" + std::to_string(o));
  expect_error(r, 404, "not_found");
  EXPECT_EQ(r.body_json()["offset"], o);
}

TEST_F(http_test, unknown_views_and_queries_are_404) {
  expect_error(get("/v1/views/nope/k"), 404, "unknown_view");
  expect_error(get("/v1/views/nope"), 404, "unknown_view");
  expect_error(get("/v1/views/nope/k?after=1&timeout_ms=100"), 404, "unknown_view");
  expect_error(get("/v1/query/nope/count"), 404, "unknown_view");
  expect_error(get("/v1/query/docs/nope"), 404, "unknown_query");
}

TEST_F(http_test, keys_are_percent_decoded_including_slashes) {
  uint64_t o = put("a/b c", 1);
  view_state("docs", o);
  auto r = get("/v1/views/docs/a%2Fb%20c");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body_json()["key"], "a/b c");
  EXPECT_EQ(get("/v1/views/docs/a/b%20c").status, 200);
  put("", 2);
  expect_error(get("/v1/views/docs/bad%zz"), 400, "invalid_parameter");
  expect_error(get("/v1/views/docs/k?after=x"), 400, "invalid_parameter");
  expect_error(get("/v1/views/docs/k?timeout_ms=30001"), 400, "invalid_parameter");
  expect_healthy();
}

TEST_F(http_test, after_waits_for_the_write_to_be_applied) {
  for (int i = 0; i < 20; ++i) {
    uint64_t o = put("rw", i);
    auto r = get("/v1/views/docs/rw?after=" + std::to_string(o));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body_json()["value"], i);
    EXPECT_GE(r.body_json()["offset"].get<uint64_t>(), o);
  }
  // A derived view too.
  uint64_t o = put("t", {{"title", "derived"}});
  EXPECT_EQ(get("/v1/views/titles/t?after=" + std::to_string(o)).body_json()["value"], "derived");
}

TEST_F(http_test, after_that_is_not_reached_is_504_after_the_timeout) {
  auto start = std::chrono::steady_clock::now();
  auto r = get("/v1/views/docs/k?after=1000&timeout_ms=200");
  auto took = std::chrono::steady_clock::now() - start;
  expect_error(r, 504, "not_caught_up");
  EXPECT_GE(took, std::chrono::milliseconds(200));  // not sooner
  expect_error(get("/v1/views/docs?after=1000&timeout_ms=0"), 504, "not_caught_up");
  expect_error(get("/v1/query/docs/count?after=1000&timeout_ms=50"), 504, "not_caught_up");
}

TEST_F(http_test, ranges_are_paged_in_key_order_from_one_snapshot) {
  uint64_t o = 0;
  for (const char* k : {"b/2", "a/1", "b/1", "b/3", "c"}) o = put(k, k);
  auto page = view_state("docs", o);
  EXPECT_EQ(page["items"].size(), 5u);
  auto r = get("/v1/views/docs?prefix=b%2F&limit=2").body_json();
  EXPECT_EQ(r["items"], json::parse(R"([{"key":"b/1","value":"b/1"},{"key":"b/2","value":"b/2"}])"));
  EXPECT_EQ(r["offset"], o);
  EXPECT_EQ(r["next"], "b/3");
  auto rest = get("/v1/views/docs?prefix=b/&start=b/3").body_json();
  EXPECT_EQ(rest["items"].size(), 1u);
  EXPECT_TRUE(rest["next"].is_null());
  expect_error(get("/v1/views/docs?limit=0"), 400, "invalid_parameter");
  expect_error(get("/v1/views/docs?limit=10001"), 400, "invalid_parameter");
}

TEST_F(http_test, queries_answer_with_the_offset) {
  uint64_t o = 0;
  for (const char* k : {"a1", "a2", "b1"}) o = put(k, 1);
  auto r = get("/v1/query/docs/count?prefix=a&after=" + std::to_string(o));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body_json(), (json{{"count", 2}, {"offset", o}}));
  auto echo = get("/v1/query/docs/echo?q=two+words&x=%2F&after=1&timeout_ms=100").body_json();
  EXPECT_EQ(echo["params"], (json{{"q", "two words"}, {"x", "/"}}));
  expect_error(get("/v1/query/docs/count?fail=1"), 400, "invalid_parameter");
}

// --- health, metrics, routes -------------------------------------------------

TEST_F(http_test, health_reports_head_durability_and_views) {
  uint64_t o = put("a", 1);
  view_state("docs", o);
  auto h = get("/v1/health").body_json();
  EXPECT_EQ(h["status"], "ok");
  EXPECT_EQ(h["head"], o);
  EXPECT_EQ(h["durability"], "relaxed");
  EXPECT_EQ(h["views"]["docs"]["offset"], o);
  EXPECT_TRUE(h["views"]["docs"].contains("status"));
  EXPECT_TRUE(h["views"]["docs"].contains("lag"));
}

TEST_F(http_test, metrics_are_prometheus_text) {
  put("a", 1);
  auto r = get("/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  for (const char* name :
       {"derive_appended_events_total 1", "derive_append_latency_seconds_count 1",
        "derive_view_offset{view=\"docs\"}", "derive_view_lag{view=\"docs\"}",
        "derive_view_status{view=\"docs\",status=\"running\"}", "derive_ws_connections",
        "derive_ws_subscriptions", "derive_ws_messages_sent_total",
        "derive_ws_changes_conflated_total", "derive_ws_changes_dropped_total",
        "derive_http_requests_total{code=\"201\"} 1", "# TYPE derive_append_latency_seconds histogram",
        "derive_append_latency_seconds_bucket{le=\"+Inf\"} 1",
        "derive_view_bytes_written_total{view=\"docs\"}",
        "derive_view_largest_value_bytes{view=\"docs\"}",
        "derive_storage_file_bytes{environment=\"log\"}",
        "derive_storage_free_bytes{environment=\"views\"}",
        "derive_storage_compactions_total{environment=\"views\"} 0",
        "derive_storage_reclaimed_bytes_total{environment=\"log\"} 0"}) {
    EXPECT_NE(r.body.find(name), std::string::npos) << name;
  }
  // Every line is a comment or `name{labels} value`.
  std::regex sample_line(R"([a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [-+0-9.eInf]+)");
  std::istringstream lines(r.body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# ", 0) == 0) continue;
    EXPECT_TRUE(std::regex_match(line, sample_line)) << line;
  }
}

TEST_F(http_test, unknown_routes_are_404_and_wrong_methods_405) {
  expect_error(get("/v1/nothing"), 404, "not_found");
  expect_error(get("/v2/events"), 404, "not_found");
  http_connection c(port());
  auto del = c.request({"DELETE", "/v1/events", "", {}});
  expect_error(del, 405, "method_not_allowed");
  EXPECT_EQ(del.header("Allow"), "GET, HEAD, POST");
  auto put_view = c.request({"PUT", "/v1/views/docs/k", "{}", {}});
  expect_error(put_view, 405, "method_not_allowed");
  EXPECT_EQ(put_view.header("Allow"), "GET, HEAD");
  expect_error(c.request({"POST", "/v1/health", "{}", {}}), 405, "method_not_allowed");
  expect_error(get("/v1/ws"), 426, "upgrade_required");
  expect_healthy();
}

TEST_F(http_test, other_methods_on_paths_that_serve_nothing_are_404) {
  http_connection c(port());
  expect_error(c.request({"DELETE", "/nothing", "", {}}), 404, "not_found");
  expect_error(c.request({"POST", "/client/nothing.js", "{}", {}}), 404, "not_found");
  auto on_file = c.request({"DELETE", "/app.js", "", {}});
  expect_error(on_file, 405, "method_not_allowed");
  EXPECT_EQ(on_file.header("Allow"), "GET, HEAD");
  EXPECT_EQ(c.get("/app.js").status, 200);
}

TEST_F(http_test, pipelined_requests_are_answered_in_order_on_one_connection) {
  http_connection c(port());
  auto rs = c.pipeline({{"POST", "/v1/events", event("p", 1), {}},
                        {"GET", "/v1/views/docs/p?after=1", "", {}},
                        {"GET", "/v1/nothing", "", {}},
                        {"POST", "/v1/events", event("p", 2), {}},
                        {"GET", "/v1/views/docs/p?after=2", "", {}},
                        {"GET", "/v1/health", "", {}}});
  ASSERT_EQ(rs.size(), 6u);
  EXPECT_EQ(rs[0].status, 201);
  EXPECT_EQ(rs[1].body_json()["value"]["n"], 1);
  EXPECT_EQ(rs[2].status, 404);
  EXPECT_EQ(rs[3].body_json()["offset"], 2);
  EXPECT_EQ(rs[4].body_json()["value"]["n"], 2);
  EXPECT_EQ(rs[5].status, 200);
  EXPECT_EQ(c.get("/v1/health").status, 200);  // still open
}

// --- static files -------------------------------------------------------------

TEST_F(http_test, static_files_are_served_with_their_content_types) {
  auto index = get("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(index.body, "<!doctype html><title>t</title>");
  EXPECT_EQ(get("/app.js").header("content-type"), "text/javascript");
  EXPECT_EQ(get("/style.css").header("content-type"), "text/css; charset=utf-8");
  EXPECT_EQ(get("/sub/").body, "<p>sub</p>");
  expect_error(get("/missing.png"), 404, "not_found");
}

TEST_F(http_test, the_browser_client_is_served_at_client_derive_js) {
  auto r = get("/client/derive.js");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/javascript");
  EXPECT_EQ(r.body, "export class Derive {}");
}

TEST_F(http_test, head_gives_the_length_without_the_body) {
  http_connection c(port());
  auto r = c.request({"HEAD", "/app.js", "", {}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-length"), "19");
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(c.get("/app.js").body, "export const x = 1;");
}

TEST_F(http_test, paths_outside_the_static_folder_are_refused) {
  for (const char* target : {"/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt",
                             "/sub/../../secret.txt", "/link.txt", "/client/../secret.txt",
                             "/client/%2e%2e/secret.txt", "/..%5csecret.txt"}) {
    http_connection c(port());
    auto r = c.raw(std::string("GET ") + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
    ASSERT_TRUE(r) << target;
    EXPECT_EQ(r->status, 404) << target;
    EXPECT_EQ(r->body.find("SECRET"), std::string::npos) << target;
  }
  expect_healthy();
}

// --- shutdown ---------------------------------------------------------------------

TEST_F(http_test, a_waiting_read_gets_503_when_the_server_stops) {
  auto waiting = std::async(std::launch::async, [&] {
    return get("/v1/views/docs/k?after=1000&timeout_ms=30000");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  server_->stop();
  auto r = waiting.get();
  expect_error(r, 503, "unavailable");
}

// A stopped server starts again with fresh lanes: connections, dealt to each
// of three lanes in turn, are served before and after the restart, appends
// included (their answers come back through the lane's gate).
TEST_F(http_test, a_stopped_server_starts_again_and_serves_on_every_lane) {
  web::server_options o;
  o.port = 0;
  o.threads = 3;
  web::server lanes(*rt_, o);
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(lanes.start().is_ok());
    EXPECT_EQ(lanes.threads(), 3u);
    const std::string key = "lane-" + std::to_string(round);
    for (int i = 0; i < 6; ++i) {  // two connections on each lane, one request each
      auto r = http_post(lanes.port(), "/v1/events", event(key, i));
      ASSERT_EQ(r.status, 201) << r.body;
      const auto offset = r.body_json()["offset"].get<uint64_t>();
      auto read =
          http_get(lanes.port(), "/v1/views/docs/" + key + "?after=" + std::to_string(offset));
      ASSERT_EQ(read.status, 200) << read.body;
      EXPECT_EQ(read.body_json()["value"], (json{{"n", i}}));
    }
    lanes.stop();
    EXPECT_EQ(lanes.threads(), 0u);
  }
}

// docs, with a query "hold" that keeps its lane's thread until released.
class busy_lane_test : public http_test {
 protected:
  void add_views(runtime& rt) override {
    auto docs = docs_view();
    docs.query("hold", [this](const view_snapshot&, const query_params&) -> result<json> {
      held_.set_value();
      released_.wait();
      return json{{"held", true}};
    });
    rt.add_view(std::move(docs));
  }

  void TearDown() override {
    if (two_) two_->stop();
    http_test::TearDown();
  }

  // Starts a server of two lanes and holds the first with a "hold" query
  // (the server's first connection is dealt there); its answer once
  // release_ is set.
  std::future<http_response> hold_the_first_of_two_lanes() {
    web::server_options o;
    o.port = 0;
    o.threads = 2;
    two_ = std::make_unique<web::server>(*rt_, o);
    EXPECT_TRUE(two_->start().is_ok());
    auto held = std::async(std::launch::async,
                           [this] { return http_get(two_->port(), "/v1/query/docs/hold"); });
    EXPECT_EQ(held_.get_future().wait_for(std::chrono::seconds(10)),
              std::future_status::ready);
    return held;
  }

  std::future<http_response> health_check() {
    return std::async(std::launch::async, [this] { return http_get(two_->port(), "/v1/health"); });
  }

  std::unique_ptr<web::server> two_;
  std::promise<void> held_;
  std::promise<void> release_;
  std::shared_future<void> released_ = release_.get_future().share();
};

TEST_F(busy_lane_test, a_lane_busy_with_a_request_holds_up_no_new_connection) {
  auto held = hold_the_first_of_two_lanes();
  // Meanwhile the next connection, dealt to the other lane, is accepted and
  // served (before, the first lane also accepted for both).
  auto health = health_check();
  EXPECT_EQ(health.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "a new connection waited for a busy lane";
  release_.set_value();
  EXPECT_EQ(health.get().status, 200);
  EXPECT_EQ(held.get().status, 200);
}

TEST_F(busy_lane_test, new_connections_are_dealt_to_the_lanes_that_are_not_busy) {
  auto held = hold_the_first_of_two_lanes();
  // Dealt in turn, every other connection would wait for the held lane.
  // Between two connections, longer than a lane may leave a pulse unrun.
  std::future<http_response> waiting;  // one dealt to the held lane, if any
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto health = health_check();
    if (health.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      ADD_FAILURE() << "connection " << i << " was dealt to the busy lane";
      waiting = std::move(health);  // answered once the lane is released
      break;
    }
    EXPECT_EQ(health.get().status, 200);
  }
  release_.set_value();
  EXPECT_EQ(held.get().status, 200);
  if (waiting.valid()) waiting.get();
}

TEST_F(http_test, a_waiting_read_gets_503_when_the_runtime_stops) {
  auto waiting = std::async(std::launch::async, [&] {
    return get("/v1/views/docs/k?after=1000&timeout_ms=30000");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  rt_->stop();
  expect_error(waiting.get(), 503, "unavailable");
  expect_error(post_events(event("late")), 503, "unavailable");
}

class idle_http_test : public web_fixture {
 protected:
  void configure(web::server_options& o) override {
    o.idle_timeout = std::chrono::milliseconds(300);
  }
};

TEST_F(idle_http_test, an_idle_keep_alive_connection_is_closed) {
  http_connection c(port());
  EXPECT_EQ(c.get("/v1/health").status, 200);
  EXPECT_TRUE(c.closed_by_peer(std::chrono::seconds(3)));
  expect_healthy();
}

TEST_F(idle_http_test, a_request_that_never_completes_is_dropped) {
  http_connection c(port());
  auto r = c.raw("GET /v1/health HTTP/1.1\r\nHost: localhost\r\n");  // no blank line: never complete
  EXPECT_FALSE(r);
  expect_healthy();
}

// docs, plus "fragile": a view that throws on events of type "boom".
class failed_view_http_test : public web_fixture {
 protected:
  void add_views(runtime& rt) override {
    rt.add_view(docs_view());
    rt.add_view(view_def("fragile").from_log().apply([](const event& e, view_txn& tx) {
      if (e.type == "boom") throw std::runtime_error("boom at " + e.key);
      tx.put(e.key, 1);
    }));
  }

  // Appends a "boom" event and waits until /v1/views reports fragile failed.
  json fail_fragile() {
    append({{"type", "boom"}, {"key", "b"}});
    for (int i = 0; i < 500; ++i) {
      auto views = get("/v1/views").body_json()["views"];
      for (auto& v : views) {
        if (v["name"] == "fragile" && v["status"] == "failed") return v;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "fragile never failed: " << get("/v1/views").body;
    return json();
  }
};

TEST_F(failed_view_http_test, health_is_degraded_while_a_view_has_failed) {
  EXPECT_EQ(get("/v1/health").body_json()["status"], "ok");
  fail_fragile();
  auto h = get("/v1/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body_json()["status"], "degraded");
  EXPECT_EQ(h.body_json()["views"]["fragile"]["status"], "failed");
  EXPECT_EQ(h.body_json()["views"]["docs"]["status"], "running");
}

TEST_F(failed_view_http_test, only_a_failed_view_carries_an_error) {
  auto fragile = fail_fragile();
  ASSERT_TRUE(fragile.contains("error"));
  EXPECT_TRUE(fragile["error"].is_string());
  EXPECT_FALSE(fragile["error"].get<std::string>().empty());
  EXPECT_EQ(fragile["offset"], 0);
  EXPECT_EQ(fragile["lag"], 1);
  auto views = get("/v1/views").body_json()["views"];
  for (auto& v : views) {
    if (v["name"] == "docs") {
      EXPECT_FALSE(v.contains("error")) << v.dump();
    }
  }
}

class durable_http_test : public web_fixture {
 protected:
  durability durability_mode() const override { return durability::full; }
};

TEST_F(durable_http_test, health_reports_full_durability_by_default) {
  EXPECT_EQ(get("/v1/health").body_json()["durability"], "full");
}

TEST_F(durable_http_test, a_busy_port_is_an_io_error) {
  web::server_options o;
  o.port = port();
  web::server second(*rt_, o);
  auto st = second.start();
  EXPECT_EQ(st.code(), errc::io_error);
  EXPECT_NE(st.message().find(std::to_string(port())), std::string::npos) << st.message();
}

// server_options::threads 0 (the default): one Asio thread per two hardware
// threads, at least one (a count asked for: a_stopped_server_starts_again_...).
TEST_F(durable_http_test, the_default_runs_one_asio_thread_per_two_hardware_threads) {
  EXPECT_EQ(server_->threads(), 2u);  // the fixture asks for two
  web::server_options o;
  o.port = 0;
  EXPECT_EQ(o.threads, 0u);
  web::server by_default(*rt_, o);
  EXPECT_EQ(by_default.threads(), 0u);  // not started
  ASSERT_TRUE(by_default.start().is_ok());
  EXPECT_EQ(by_default.threads(), std::max(1u, std::thread::hardware_concurrency() / 2));
  EXPECT_EQ(http_get(by_default.port(), "/v1/health").status, 200);
  by_default.stop();
  EXPECT_EQ(by_default.threads(), 0u);
}

// --- POST /v1/subjects/{subject}/forget (admin) -------------------------------------

TEST_F(http_test, forget_redacts_the_subjects_events_and_answers_the_receipt) {
  auto secret = json{{"type", "doc.put"}, {"key", "sk"}, {"subject", "al ice"},
                     {"data", {{"t", "zqsecret"}}}};
  ASSERT_EQ(post_events(secret.dump()).status, 201);
  ASSERT_EQ(post_events(event("other")).status, 201);
  auto r = http_post(port(), "/v1/subjects/al%20ice/forget", "");
#ifdef DERIVE_TEST_CLUSTER
  // A cluster node's log is an immutable stream: it refuses (docs/storage.md, "Erasure").
  expect_error(r, 501, "not_supported");
  return;
#endif
  ASSERT_EQ(r.status, 200) << r.body;
  auto receipt = r.body_json();
  EXPECT_EQ(receipt["type"], "derive.erasure");
  EXPECT_EQ(receipt["offset"], 3);
  EXPECT_EQ(receipt["redacted"], 1);
  EXPECT_EQ(receipt["offsets"], json::parse("[[1,1]]"));
  auto events = get("/v1/events?from=1").body_json()["events"];
  EXPECT_EQ(events[0], json::parse(R"({"offset":1,"ts":)" + std::to_string(events[0]["ts"].get<int64_t>()) +
                                   R"(,"type":"doc.put","key":"","data":null,"redacted":true})"));
  EXPECT_EQ(events[1]["key"], "other");
  EXPECT_EQ(get("/v1/events?from=1").body.find("zqsecret"), std::string::npos);
  expect_error(get("/v1/subjects/x/forget"), 405, "method_not_allowed");
  expect_error(http_post(port(), "/v1/subjects/x/nope", ""), 404, "not_found");
  expect_error(http_post(port(), "/v1/subjects//forget", ""), 400, "invalid_parameter");
  expect_error(get("/v1/subjects//forget"), 405, "method_not_allowed");
  expect_error(http_post(port(), "/v1/subjects/" + std::string(257, 'a') + "/forget", ""), 400,
               "invalid_parameter");
  expect_error(http_post(port(), "/v1/events", json{{"type", "derive.erasure"}}.dump()), 400,
               "invalid_event");
}

// Without authentication the admin routes answer loopback peers only
// (protocol.md, "Admin"). Tests bind loopback, so the router is asked directly
// with the peer address a non-loopback client would have.
TEST_F(http_test, admin_routes_refuse_peers_that_are_not_loopback_while_auth_is_off) {
  web::server_options options;
  web::metrics stats;
  const std::shared_ptr<const web::authorizer> no_auth;  // the router keeps a reference
  web::router router(*rt_, options, stats, no_auth);
  auto ask = [&](std::string method, std::string target, std::string peer) {
    web::http_request req;
    req.method = std::move(method);
    req.target = std::move(target);
    req.remote_address = std::move(peer);
    std::promise<web::http_reply> answered;
    router.handle(std::move(req), [&](web::http_reply r) { answered.set_value(std::move(r)); },
                  [](std::function<void()> f) { f(); });
    return answered.get_future().get();
  };
  for (const char* peer : {"192.0.2.7", "10.0.0.1", "::ffff:192.0.2.7", "2001:db8::1"}) {
    for (auto [method, target] : {std::pair{"GET", "/v1/admin/views/docs/audit"},
                                  std::pair{"POST", "/v1/admin/views/docs/audit"},
                                  std::pair{"POST", "/v1/admin/views/docs/rebuild?version=1"},
                                  std::pair{"POST", "/v1/subjects/alice/forget"}}) {
      auto r = ask(method, target, peer);
      EXPECT_EQ(r.status, 403u) << method << " " << target << " from " << peer << ": " << r.body;
      EXPECT_NE(r.body.find("\"forbidden\""), std::string::npos) << r.body;
    }
  }
  for (const char* peer : {"127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"}) {
    auto r = ask("GET", "/v1/admin/views/docs/audit", peer);
    EXPECT_EQ(r.status, 200u) << peer << ": " << r.body;
  }
  EXPECT_EQ(ask("GET", "/v1/views/docs", "192.0.2.7").status, 200u) << "reads are not admin";
}

// --- retention (docs/operating.md, "Retention") -----------------------------

#ifndef DERIVE_TEST_CLUSTER  // retention is refused in cluster mode
class retention_http_test : public web_fixture {
 protected:
  void configure_runtime(runtime_options& o) override {
    o.log.clock = [this] { return now_.load(); };
    o.retention = {{"doc.put", std::chrono::hours(1)}};
    o.retention_interval = std::chrono::hours(24 * 1000);  // sweeps on demand below
  }
  void sweep() {
    std::promise<result<retention_sweep>> done;
    rt_->sweep_retention([&done](result<retention_sweep> r) { done.set_value(std::move(r)); });
    auto r = done.get_future().get();
    ASSERT_TRUE(r) << r.error().to_string();
  }
  std::atomic<int64_t> now_{1'700'000'000'000};
};

TEST_F(retention_http_test, health_and_metrics_report_the_sweeps) {
  const uint64_t a = put("a", 1);
  now_ += 2 * 3600 * 1000;
  const uint64_t b = put("b", 2);
  sweep();
  auto docs = view_state("docs", b + 1);  // the receipt follows b
  ASSERT_EQ(docs["items"].size(), 1u) << docs.dump();
  EXPECT_EQ(docs["items"][0]["key"], "b");
  auto h = get("/v1/health").body_json();
  ASSERT_TRUE(h.contains("retention")) << h.dump();
  EXPECT_EQ(h["retention"]["expired"], 1);
  EXPECT_EQ(h["retention"]["last_sweep_ms"], now_.load());
  EXPECT_EQ(h["retention"]["rules"][0]["pattern"], "doc.put");
  EXPECT_EQ(h["retention"]["rules"][0]["keep_ms"], 3600 * 1000);
  EXPECT_EQ(h["retention"]["rules"][0]["through"], a);
  auto m = get("/metrics").body;
  for (const std::string& sample : std::vector<std::string>{
           "derive_retention_expired_events_total 1\n",
        "derive_retention_rule_expired_events_total{rule=\"doc.put\"} 1\n",
        "derive_retention_rule_through_offset{rule=\"doc.put\"} " + std::to_string(a) + "\n",
        "derive_retention_rule_keep_seconds{rule=\"doc.put\"} 3600\n",
        "derive_retention_last_sweep_seconds " + std::to_string(now_.load() / 1000) + "\n"})
    EXPECT_NE(m.find(sample), std::string::npos) << sample;
}
#endif

}  // namespace
}  // namespace derive::webtest
