// The `derive` command-line tool (tools/derive) against a real server: the
// real binary, run as a child process, its JSON output and exit codes.

#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/web/web_fixture.hpp"

namespace derive::webtest {
namespace {

struct run_result {
  int code = -1;
  std::string out;
  std::vector<json> lines;  // stdout, one JSON document per line
};

class derive_tool_test : public web_fixture {
 protected:
  void add_views(runtime& rt) override {
    web_fixture::add_views(rt);
    rt.add_view(view_def("noisy").from_log().apply([](const event& e, view_txn& tx) {
      tx.put(e.key, std::chrono::steady_clock::now().time_since_epoch().count());
    }));
    // Takes 2 ms per "slow/" event: a rebuild of it lasts long enough to be watched.
    rt.add_view(view_def("slow").from_log().apply([](const event& e, view_txn& tx) {
      if (e.key.rfind("slow/", 0) != 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      tx.put(e.key, true);
    }));
  }

  // Runs `derive --url <this server> ARGS` (stderr discarded, or with stdout).
  run_result tool(const std::string& args, bool with_url = true, bool with_stderr = false) {
    std::string command = std::string(DERIVE_TOOL_PATH) + " " +
                          (with_url ? "--url http://127.0.0.1:" + std::to_string(port()) + " " : "") +
                          args + (with_stderr ? " 2>&1" : " 2>/dev/null");
    run_result r;
    FILE* p = popen(command.c_str(), "r");
    EXPECT_NE(p, nullptr);
    if (!p) return r;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
    int st = pclose(p);
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      auto j = json::parse(line, nullptr, false);
      if (!j.is_discarded()) r.lines.push_back(std::move(j));
    }
    return r;
  }

  void fill() {
    put("a1", {{"title", "one"}});
    put("a2", {{"title", "two"}});
    put("b1", {{"n", 1}});
    append({{"type", "doc.delete"}, {"key", "a2"}});
    for (auto* v : {"docs", "titles", "recent", "noisy", "slow"})
      ASSERT_TRUE(wait_for_view(v, 4)) << v;
  }

  // Runs `derive --url <this server> forget SUBJECT` on a pseudo-terminal:
  // what it wrote there, and its exit code (-1: it did not exit).
  std::pair<std::string, int> forget_on_terminal(const std::string& subject) {
    const std::string url = "http://127.0.0.1:" + std::to_string(port());
    int master = -1;
    const pid_t child = forkpty(&master, nullptr, nullptr, nullptr);
    EXPECT_GE(child, 0);
    if (child < 0) return {"", -1};
    if (child == 0) {
      execl(DERIVE_TOOL_PATH, "derive", "--url", url.c_str(), "--timeout", "120", "forget",
            subject.c_str(), nullptr);
      _exit(127);
    }
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = read(master, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    close(master);  // read() fails with EIO once the child closed the terminal
    int st = 0;
    if (waitpid(child, &st, 0) != child || !WIFEXITED(st)) return {out, -1};
    return {out, WEXITSTATUS(st)};
  }

  bool wait_for_view(const std::string& view, uint64_t offset) {
    for (int i = 0; i < 2000; ++i) {
      auto info = rt_->view(view);
      if (info && info->offset >= offset) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
};

TEST_F(derive_tool_test, status_lists_the_views_with_their_audits) {
  fill();
  auto r = tool("status --json");
  EXPECT_EQ(r.code, 0) << r.out;
  ASSERT_EQ(r.lines.size(), 1u) << r.out;
  EXPECT_EQ(r.lines[0]["head"], 4);
  ASSERT_EQ(r.lines[0]["views"].size(), 5u);
  EXPECT_EQ(r.lines[0]["views"][0]["name"], "docs");
  EXPECT_TRUE(r.lines[0]["views"][0]["audit"].is_null());
  auto table = tool("status");
  EXPECT_EQ(table.code, 0);
  EXPECT_NE(table.out.find("titles"), std::string::npos) << table.out;
  EXPECT_EQ(table.out.find("\x1b["), std::string::npos);  // not a terminal: no drawing
}

TEST_F(derive_tool_test, status_names_the_generation_that_serves_after_a_rebuild) {
  fill();
  const uint32_t version = rt_->view("titles")->version;
  ASSERT_TRUE(rt_->rebuild("titles", version));
  auto serving_generation = [&] {
    auto info = rt_->view("titles");  // named: the loop must not outlive it
    if (info)
      for (const auto& v : info->versions)
        if (v.role == version_role::serving) return v.generation;
    return 0u;
  };
  for (int i = 0; i < 2000 && serving_generation() != 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(serving_generation(), 1u);
  auto table = tool("status");
  EXPECT_EQ(table.code, 0) << table.out;
  const std::string g1 = std::to_string(version) + ".g1";
  std::istringstream lines(table.out);
  bool served_row = false;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("titles ", 0) == 0)  // the view's own row: the copy it serves
      served_row = line.find(" " + g1 + "@docs/") != std::string::npos;  // and its upstream
  EXPECT_TRUE(served_row) << table.out;
}

TEST_F(derive_tool_test, audit_passes_a_sound_view_and_fails_a_clock_reading_one) {
  fill();
  auto sound = tool("audit titles --json");
  EXPECT_EQ(sound.code, 0) << sound.out;
  ASSERT_EQ(sound.lines.size(), 1u) << sound.out;
  EXPECT_EQ(sound.lines[0]["ok"], true);
  EXPECT_EQ(sound.lines[0]["offset"], 4);
  EXPECT_EQ(sound.lines[0]["digest"], sound.lines[0]["expected_digest"]);
  auto noisy = tool("audit noisy --json");
  EXPECT_EQ(noisy.code, 1) << noisy.out;
  ASSERT_EQ(noisy.lines.size(), 1u);
  EXPECT_EQ(noisy.lines[0]["ok"], false);
  ASSERT_EQ(noisy.lines[0]["differences"].size(), 3u);  // a1, a2, b1
  EXPECT_EQ(noisy.lines[0]["differences"][0]["key"], "a1");
  // The result is kept: GET /v1/views, `status` (now unhealthy) and /metrics.
  auto status = tool("status --json");
  EXPECT_EQ(status.code, 1);
  EXPECT_EQ(status.lines.at(0)["views"][3]["audit"]["ok"], false);
  auto metrics = get("/metrics");
  EXPECT_NE(metrics.body.find("derive_view_audit_ok{view=\"noisy\",version=\"1\"} 0"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("derive_view_audit_ok{view=\"titles\",version=\"1\"} 1"),
            std::string::npos);
}

TEST_F(derive_tool_test, scrub_checks_every_record) {
  fill();
  auto r = tool("scrub --json");
  EXPECT_EQ(r.code, 0) << r.out;
  ASSERT_EQ(r.lines.size(), 1u);
  EXPECT_EQ(r.lines[0]["ok"], true);
  EXPECT_EQ(r.lines[0]["checked"], 4);
  EXPECT_EQ(r.lines[0]["head"], 4);
}

TEST_F(derive_tool_test, tail_prints_the_events_that_pass_its_filters) {
  fill();
  auto all = tool("tail --from 1 --once --json");
  EXPECT_EQ(all.code, 0);
  ASSERT_EQ(all.lines.size(), 4u) << all.out;
  EXPECT_EQ(all.lines[3]["type"], "doc.delete");
  auto puts_of_a = tool("tail --from 1 --once --json --type doc.put --prefix a");
  ASSERT_EQ(puts_of_a.lines.size(), 2u) << puts_of_a.out;
  EXPECT_EQ(puts_of_a.lines[1]["key"], "a2");
  auto text = tool("tail --from 2 --once --type doc.delete");
  EXPECT_EQ(text.out, "4 doc.delete a2 null\n");
}

TEST_F(derive_tool_test, exit_codes_tell_usage_unreachable_and_server_errors_apart) {
  EXPECT_EQ(tool("").code, 2);
  EXPECT_EQ(tool("frobnicate").code, 2);
  EXPECT_EQ(tool("--url http://127.0.0.1:1 status", false).code, 3);
  auto forget = tool("forget --json");  // no SUBJECT
  EXPECT_EQ(forget.code, 2);
  ASSERT_EQ(forget.lines.size(), 1u) << forget.out;  // usage errors are JSON under --json
  EXPECT_EQ(forget.lines[0]["error"]["code"], "usage");
  EXPECT_EQ(tool("forget '' --json").code, 2);
  EXPECT_EQ(tool("--json --bogus status").lines.at(0)["error"]["code"], "usage");
  auto unknown = tool("audit nope --json");
  EXPECT_EQ(unknown.code, 4);
  ASSERT_EQ(unknown.lines.size(), 1u);
  EXPECT_EQ(unknown.lines[0]["error"]["code"], "unknown_view");
}

TEST_F(derive_tool_test, admin_routes_answer_json_with_stable_errors) {
  fill();
  EXPECT_TRUE(get("/v1/admin/views/docs/audit").body_json()["audit"].is_null());
  auto started = http_post(port(), "/v1/admin/views/docs/audit", "");
  EXPECT_EQ(started.status, 202) << started.body;
  EXPECT_EQ(http_post(port(), "/v1/admin/views/nope/audit", "").status, 404);
  EXPECT_EQ(get("/v1/admin/views/nope/audit").body_json()["error"]["code"], "unknown_view");
  EXPECT_EQ(get("/v1/admin/nothing").status, 404);
  EXPECT_EQ(http_post(port(), "/v1/admin/scrub", "").status, 202);
  for (int i = 0; i < 2000 && get("/v1/admin/scrub").body_json()["scrub"]["running"] == true; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(get("/v1/admin/scrub").body_json()["scrub"]["ok"], true);
  for (int i = 0; i < 2000 && get("/v1/admin/views/docs/audit").body_json()["audit"].is_null(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(get("/v1/admin/views/docs/audit").body_json()["audit"]["ok"], true);
  EXPECT_EQ(get("/v1/views").body_json()["views"][0]["audit"]["ok"], true);
}

TEST_F(derive_tool_test, forget_prints_the_receipt_of_the_route) {
  fill();
  append({{"type", "doc.put"}, {"key", "z1"}, {"subject", "zoe"}, {"data", {{"name", "Zoe"}}}});
  ASSERT_TRUE(wait_for_view("docs", 5));
  auto forget = tool("forget zoe --json");
  EXPECT_EQ(forget.code, 0) << forget.out;
  ASSERT_EQ(forget.lines.size(), 1u) << forget.out;
  EXPECT_EQ(forget.lines[0]["type"], "derive.erasure");
  EXPECT_EQ(forget.lines[0]["redacted"], 1);
  EXPECT_EQ(forget.lines[0]["offsets"], json::parse("[[5,5]]"));
  EXPECT_GT(forget.lines[0]["offset"].get<uint64_t>(), 5u);
  auto unknown = tool("forget nobody --json");
  EXPECT_EQ(unknown.code, 0) << unknown.out;
  EXPECT_EQ(unknown.lines.at(0)["redacted"], 0);
}

// `derive forget` on a terminal (a pseudo-terminal here): its progress on
// stderr, then the receipt; without one, stdout and stderr hold the receipt only.
TEST_F(derive_tool_test, forget_on_a_terminal_shows_its_progress_then_the_receipt) {
  fill();
  append({{"type", "doc.put"}, {"key", "z1"}, {"subject", "zoe"}, {"data", {{"name", "Zoe"}}}});
  append({{"type", "doc.put"}, {"key", "z2"}, {"subject", "zed"}, {"data", {{"name", "Zed"}}}});
  ASSERT_TRUE(wait_for_view("docs", 6));
  auto [out, code] = forget_on_terminal("zoe");
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out.rfind("forgetting \"zoe\" ...", 0), 0u) << out;
  const auto done = out.find("forgotten in ");
  ASSERT_NE(done, std::string::npos) << out;
  EXPECT_NE(out.find(" s: 1 event redacted, 5 views rebuilt; the receipt (offset 7):", done),
            std::string::npos) << out;
  auto receipt = json::parse(out.substr(out.find('{', done)), nullptr, false);
  ASSERT_FALSE(receipt.is_discarded()) << out;
  EXPECT_EQ(receipt["type"], "derive.erasure");
  EXPECT_EQ(receipt["offsets"], json::parse("[[5,5]]"));

  auto piped = tool("forget zed", true, true);  // stderr too: no terminal, no progress
  EXPECT_EQ(piped.code, 0) << piped.out;
  auto only = json::parse(piped.out, nullptr, false);
  ASSERT_FALSE(only.is_discarded()) << piped.out;
  EXPECT_EQ(only["offsets"], json::parse("[[6,6]]"));
}

// While the copies of the views are built beside the served ones, the
// progress line names them and draws a bar (the "slow" view takes >= 0.8 s).
TEST_F(derive_tool_test, forget_on_a_terminal_names_the_copies_being_built) {
  fill();
  for (int i = 0; i < 400; ++i) put("slow/" + std::to_string(i), {{"n", i}});
  append({{"type", "doc.put"}, {"key", "z1"}, {"subject", "zoe"}, {"data", {{"name", "Zoe"}}}});
  ASSERT_TRUE(wait_for_view("slow", 405));
  auto [out, code] = forget_on_terminal("zoe");
  EXPECT_EQ(code, 0) << out;
  const std::string slow_copy = "slow " + std::to_string(rt_->view("slow")->version) + ".g1";
  std::regex building("forgetting \\([0-9]+ s\\): rebuilding \\[[#-]{20}\\] [0-9]+% [^\r]*" +
                      slow_copy);
  EXPECT_TRUE(std::regex_search(out, building)) << out;
  EXPECT_NE(out.find("forgotten in "), std::string::npos) << out;
}

TEST_F(derive_tool_test, verify_forgotten_finds_data_in_the_data_directory) {
  put("c1", {{"name", "Zoë Quux-Unique"}});
  ASSERT_TRUE(wait_for_view("docs", 1));
  auto found = tool("verify-forgotten --json --data " + dir_.path() + "/data 'Zoë Quux-Unique'", false);
  EXPECT_EQ(found.code, 1) << found.out;
  ASSERT_EQ(found.lines.size(), 1u);
  EXPECT_GE(found.lines[0]["hits"].size(), 2u);  // the log and the docs view at least
  auto none = tool("verify-forgotten --json --data " + dir_.path() + "/data never-written-x7", false);
  EXPECT_EQ(none.code, 0);
  EXPECT_EQ(none.lines.at(0)["hits"].size(), 0u);
}

// The tool against a server with TLS (a self-signed certificate made at test
// time, for localhost and 127.0.0.1): https:// with the certificate trusted
// through --cacert or $DERIVE_CACERT, and refused when it is not trusted.
class derive_tool_tls_test : public derive_tool_test {
 protected:
  void configure(web::server_options& o) override {
    cert_ = dir_.path() + "/cert.pem";
    ASSERT_TRUE(make_self_signed_cert(cert_, dir_.path() + "/key.pem", "derive-tool-test"));
    o.tls_cert_file = cert_;
    o.tls_key_file = dir_.path() + "/key.pem";
  }
  // `derive --url https://HOST:<port> ARGS`, stderr with stdout.
  run_result over_tls(const std::string& host, const std::string& args) {
    return tool("--url https://" + host + ":" + std::to_string(port()) + " " + args, false, true);
  }
  std::string cert_;
};

TEST_F(derive_tool_tls_test, speaks_https_to_a_server_whose_certificate_it_trusts) {
  auto ip = over_tls("127.0.0.1", "--cacert " + cert_ + " status --json");
  EXPECT_EQ(ip.code, 0) << ip.out;
  ASSERT_EQ(ip.lines.size(), 1u) << ip.out;
  EXPECT_EQ(ip.lines[0]["views"][0]["name"], "docs");
  auto named = over_tls("localhost", "--cacert " + cert_ + " scrub --json");  // the name checked
  EXPECT_EQ(named.code, 0) << named.out;
  auto from_env = tool("--url https://127.0.0.1:" + std::to_string(port()) + " status --json",
                       false);
  EXPECT_EQ(from_env.code, 3);  // not trusted without it ...
  setenv("DERIVE_CACERT", cert_.c_str(), 1);
  auto with_env = tool("--url https://127.0.0.1:" + std::to_string(port()) + " status --json",
                       false);
  unsetenv("DERIVE_CACERT");
  EXPECT_EQ(with_env.code, 0) << with_env.out;  // ... and trusted with $DERIVE_CACERT
}

TEST_F(derive_tool_tls_test, refuses_a_server_whose_certificate_it_does_not_trust) {
  auto r = over_tls("127.0.0.1", "status --json");  // the system's CAs did not sign it
  EXPECT_EQ(r.code, 3) << r.out;
  ASSERT_FALSE(r.lines.empty()) << r.out;
  EXPECT_EQ(r.lines[0]["error"]["code"], "unreachable");
  const std::string message = r.lines[0]["error"]["message"];
  EXPECT_NE(message.find("not trusted"), std::string::npos) << message;
  EXPECT_NE(message.find("--cacert"), std::string::npos) << message;
  // A CA file that is not one is an error that names it.
  auto bad = over_tls("127.0.0.1", "--cacert " + dir_.path() + "/www/index.html status --json");
  EXPECT_EQ(bad.code, 3) << bad.out;
  EXPECT_NE(bad.out.find("www/index.html"), std::string::npos) << bad.out;
  // Plain HTTP on the TLS port: the server says to use https.
  auto plain = tool("status --json");
  EXPECT_EQ(plain.code, 4) << plain.out;
  ASSERT_FALSE(plain.lines.empty()) << plain.out;
  EXPECT_EQ(plain.lines[0]["error"]["code"], "tls_required");
}

}  // namespace
}  // namespace derive::webtest
