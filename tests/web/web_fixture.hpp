#pragma once
// A real runtime (temporary data directory, three small views) and a real
// server on 127.0.0.1 port 0, for the web tests. No Beast here.

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include <derive/runtime.hpp>
#include <derive/view.hpp>
#include "tests/web/web_client.hpp"
#include <derive/web/server.hpp>
#ifdef DERIVE_TEST_CLUSTER
#include "tests/cluster/nats_cluster.hpp"
#endif

namespace derive::webtest {

// Built with DERIVE_TEST_CLUSTER (tests/cluster), the suite runs against a
// cluster node: one nats-server for the whole binary, a stream per test.
inline void configure_cluster(runtime_options& o) {
#ifdef DERIVE_TEST_CLUSTER
  static derive::testing::nats_cluster nats(1);
  o.cluster.nats_urls = nats.urls();
  o.cluster.stream = "t" + std::to_string(std::hash<std::string>{}(o.data_dir));
#else
  (void)o;
#endif
}

class temp_dir {
 public:
  temp_dir() {
    char templ[] = "/tmp/derive-web-test-XXXXXX";
    path_ = ::mkdtemp(templ);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

// doc.put stores `data` under the key, doc.delete erases it. Queries: "count"
// (keys with ?prefix=, "fail" refuses with invalid_parameter) and "echo".
inline view_def docs_view(std::string name = "docs", uint64_t retention = 100'000) {
  return view_def(std::move(name))
      .from_log()
      .changelog_retention(retention)
      .apply([](const event& e, view_txn& tx) {
        if (e.type == "doc.put") tx.put(e.key, json::parse(e.data));
        else if (e.type == "doc.delete") tx.erase(e.key);
      })
      .query("count",
             [](const view_snapshot& snap, const query_params& p) -> result<json> {
               if (p.count("fail")) return status{errc::invalid_parameter, "fail was given"};
               auto prefix = p.count("prefix") ? p.at("prefix") : "";
               auto page = snap.range(prefix, "", 1'000'000);
               if (!page) return page.error();
               return json{{"count", page->items.size()}};
             })
      .query("echo", [](const view_snapshot&, const query_params& p) -> result<json> {
        return json{{"params", p}};
      });
}

// Derived from docs: each document's "title" (documents without one: none).
inline view_def titles_view() {
  return view_def("titles").from_view("docs").apply_change(
      [](const upstream_change& c, view_txn& tx) {
        if (c.value && c.value->is_object() && c.value->contains("title")) {
          tx.put(c.key, (*c.value)["title"]);
        } else {
          tx.erase(c.key);
        }
      });
}

class web_fixture : public ::testing::Test {
 protected:
  // Called before the server starts; override to change its options.
  virtual void configure(web::server_options&) {}
  // Called before the runtime starts; override to change its options.
  virtual void configure_runtime(runtime_options&) {}
  virtual durability durability_mode() const { return durability::relaxed; }

  void SetUp() override {
    static_dir_ = dir_.path() + "/www";
    client_dir_ = dir_.path() + "/client";
    write_file(static_dir_ + "/index.html", "<!doctype html><title>t</title>");
    write_file(static_dir_ + "/app.js", "export const x = 1;");
    write_file(static_dir_ + "/style.css", "body{}");
    write_file(static_dir_ + "/sub/index.html", "<p>sub</p>");
    write_file(dir_.path() + "/secret.txt", "TOP SECRET");
    std::filesystem::create_symlink(dir_.path() + "/secret.txt", static_dir_ + "/link.txt");
    write_file(client_dir_ + "/derive.js", "export class Derive {}");
    start_runtime();
    start_server();
  }

  void TearDown() override {
    if (server_) server_->stop();
    server_.reset();
    if (rt_) rt_->stop();
    rt_.reset();
  }

  // The views of the runtime: docs, titles (derived) and recent (docs with a
  // changelog of 5 offsets).
  virtual void add_views(runtime& rt) {
    rt.add_view(docs_view());
    rt.add_view(titles_view());
    rt.add_view(docs_view("recent", 5));
  }

  void start_runtime() {
    runtime_options o;
    o.data_dir = dir_.path() + "/data";
    o.storage.mode = durability_mode();
    o.storage.map_size = uint64_t{1} << 30;
    configure_cluster(o);
    configure_runtime(o);
    rt_ = std::make_unique<runtime>(o);
    add_views(*rt_);
    auto st = rt_->start();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
  }

  void start_server() {
    web::server_options o;
    o.port = 0;
    // Two Asio threads whatever the machine (the default may be one): the
    // tests exercise the hand-offs between lanes (accepted on one, served on
    // the other; ticks and shutdowns across them).
    o.threads = 2;
    o.static_dir = static_dir_;
    o.client_dir = client_dir_;
    o.ping_interval = std::chrono::seconds(60);
    o.pong_timeout = std::chrono::seconds(60);
    configure(o);
    server_ = std::make_unique<web::server>(*rt_, o);
    auto st = server_->start();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
  }

  uint16_t port() const { return server_->port(); }

  http_response get(const std::string& target) { return http_get(port(), target); }
  http_response post_events(const std::string& body,
                            std::map<std::string, std::string> headers = {}) {
    return http_post(port(), "/v1/events", body, std::move(headers));
  }
  // Appends one event and returns its offset.
  uint64_t append(const json& event) {
    auto r = post_events(event.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.body_json().value("offset", uint64_t{0});
  }
  uint64_t put(const std::string& key, const json& data) {
    return append({{"type", "doc.put"}, {"key", key}, {"data", data}});
  }
  uint64_t del(const std::string& key) { return append({{"type", "doc.delete"}, {"key", key}}); }

  // GET /v1/views/{view}?after=offset: the whole view once it reached `offset`.
  json view_state(const std::string& view, uint64_t offset) {
    auto r = get("/v1/views/" + view + "?limit=10000&after=" + std::to_string(offset));
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body_json();
  }

  // The server still answers a fresh connection.
  void expect_healthy() {
    auto r = get("/v1/health");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body_json().value("status", ""), "ok");
  }

  std::unique_ptr<ws_connection> connect_ws(std::map<std::string, std::string> headers = {}) {
    auto c = std::make_unique<ws_connection>(port(), std::move(headers));
    EXPECT_EQ(c->handshake_status(), 101);
    return c;
  }

  // The next message; fails the test unless its "op" is `op`.
  json expect_op(ws_connection& c, const std::string& op,
                 std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto m = c.read(timeout);
    EXPECT_TRUE(m.has_value()) << "no message, expected " << op;
    if (!m) return json();
    EXPECT_EQ(m->value("op", ""), op) << m->dump();
    return *m;
  }

  temp_dir dir_;
  std::string static_dir_;
  std::string client_dir_;
  std::unique_ptr<runtime> rt_;
  std::unique_ptr<web::server> server_;
};

}  // namespace derive::webtest
