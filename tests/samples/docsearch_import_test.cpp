// `docsearch import`: a small generated folder loaded into a runtime served
// by the real HTTP server on a free port.
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <derive/runtime.hpp>
#include <derive/web/server.hpp>
#include "samples/docsearch/docsearch_views.hpp"
#include "samples/docsearch/importer.hpp"
#include "tests/web/token_maker.hpp"

namespace {

namespace fs = std::filesystem;
using derive::json;

class docsearch_import : public ::testing::Test {
 protected:
  // Replaces the server by one in auth mode with the sample's rules.
  void restart_with_auth() {
    srv_->stop();
    derive::web::server_options so;
    so.port = 0;
    so.threads = 1;
    derive::web::auth_options auth;
    auth.tokens.hs256_secret = secret_;
    auto rules = derive::web::access_rules::from_file(DOCSEARCH_RULES_FILE);
    ASSERT_TRUE(rules) << rules.error().to_string();
    auth.rules = *rules;
    so.auth = auth;
    srv_ = std::make_unique<derive::web::server>(*rt_, so);
    auto st = srv_->start();
    ASSERT_TRUE(st) << st.to_string();
  }
  std::string token(const std::string& sub) const {
    return derive::webtest::make_hs256(
        secret_, {{"sub", sub}, {"exp", derive::webtest::now_seconds() + 600}});
  }

  void SetUp() override {
    base_ = fs::temp_directory_path() /
            ("derive-docsearch-import-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    fs::create_directories(base_ / "corpus");
    derive::runtime_options options;
    options.data_dir = (base_ / "data").string();
    options.storage.mode = derive::durability::relaxed;
    options.storage.map_size = uint64_t{1} << 30;
    rt_ = std::make_unique<derive::runtime>(options);
    docsearch::install(*rt_);
    ASSERT_TRUE(rt_->start());
    derive::web::server_options so;
    so.port = 0;
    so.threads = 1;
    srv_ = std::make_unique<derive::web::server>(*rt_, so);
    auto st = srv_->start();
    ASSERT_TRUE(st) << st.to_string();
  }
  void TearDown() override {
    if (srv_) srv_->stop();
    if (rt_) rt_->stop();
    srv_.reset();
    rt_.reset();
    fs::remove_all(base_);
  }

  void write(const std::string& rel, const std::string& content) {
    fs::path p = base_ / "corpus" / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
  }

  docsearch::import_report run(size_t batch = 2, std::string token = "",
                               std::string prefix = "", std::string subject = "") {
    docsearch::import_options o;
    o.token = std::move(token);
    o.prefix = std::move(prefix);
    o.subject = std::move(subject);
    o.dir = (base_ / "corpus").string();
    o.url = "http://127.0.0.1:" + std::to_string(srv_->port());
    o.batch_size = batch;
    o.progress = false;
    std::ostringstream err;
    auto r = docsearch::import_directory(o, err);
    messages_ = err.str();
    return r;
  }

  std::optional<json> document(const std::string& id) {
    auto snap = rt_->snapshot("documents");
    EXPECT_TRUE(snap);
    auto v = snap->get(id);
    EXPECT_TRUE(v);
    if (!v || !*v) return std::nullopt;
    json doc = json::parse(**v);
    doc.erase("updated");
    return doc;
  }

  const std::string secret_ = "the docsearch import test's secret, 32 bytes";
  fs::path base_;
  std::unique_ptr<derive::runtime> rt_;
  std::unique_ptr<derive::web::server> srv_;
  std::string messages_;
};

TEST_F(docsearch_import, loads_a_folder_recursively_skips_what_cannot_be_a_document_and_reports) {
  write("a.md", "# Alpha heading\n\nThe zebra text.\n");
  write("notes/b.txt", "\n  Bravo line  \nmore zebra words\n");
  write("notes/deep/c.txt", "charlie");
  write("empty.txt", "");
  write("d.rst", "Delta\n");
  write("e.txt", "echo zebra");
  write(".hidden/x.txt", "hidden");
  write(".dotfile", "hidden");
  write("binary.dat", std::string("ab\0cd", 5));
  write("latin1.txt", "caf\xe9");
  write("huge.txt", std::string(1100 * 1024, 'z'));

  auto r = run();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.files, 9u);
  EXPECT_EQ(r.documents, 6u);
  EXPECT_EQ(r.requests, 3u);
  EXPECT_EQ(r.replayed, 0u);
  EXPECT_EQ(r.skipped_not_utf8, 2u);
  EXPECT_EQ(r.skipped_too_large, 1u);
  EXPECT_EQ(r.skipped_other, 0u);
  EXPECT_EQ(r.last_offset, rt_->head());
  EXPECT_NE(messages_.find("skipping latin1.txt: not UTF-8"), std::string::npos) << messages_;
  EXPECT_NE(messages_.find("skipping binary.dat: not UTF-8"), std::string::npos) << messages_;
  EXPECT_NE(messages_.find("skipping huge.txt: too large"), std::string::npos) << messages_;

  EXPECT_EQ(document("a.md"), (json{{"title", "Alpha heading"}, {"text", "\nThe zebra text.\n"}}));
  EXPECT_EQ(document("notes/b.txt"), (json{{"title", "Bravo line"}, {"text", "more zebra words\n"}}));
  EXPECT_EQ(document("notes/deep/c.txt"), (json{{"title", "charlie"}, {"text", ""}}));
  EXPECT_EQ(document("empty.txt"), (json{{"title", "empty"}, {"text", ""}}));
  EXPECT_EQ(document(".hidden/x.txt"), std::nullopt);

  // Searchable when the import returns: it waited for the search view.
  auto hits = rt_->query("search", "search", {{"q", "zebra"}});
  ASSERT_TRUE(hits);
  EXPECT_EQ((*hits)["hits"].size(), 3u);

  std::ostringstream report;
  docsearch::print_report(r, report);
  EXPECT_NE(report.str().find("imported 6 documents"), std::string::npos) << report.str();
  EXPECT_NE(report.str().find("searchable after"), std::string::npos) << report.str();
  EXPECT_NE(report.str().find("skipped 3 of 9 files"), std::string::npos) << report.str();
}

TEST_F(docsearch_import, running_it_again_appends_nothing) {
  for (int i = 0; i < 7; ++i) write("doc" + std::to_string(i) + ".txt", "title\nbody " + std::to_string(i));
  auto first = run(3);
  ASSERT_TRUE(first.ok) << first.error;
  uint64_t head = rt_->head();
  EXPECT_EQ(head, 7u);
  auto second = run(3);
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_EQ(second.replayed, 7u);
  EXPECT_EQ(rt_->head(), head);
}

// --subject: every event names the author, so that forgetting them removes
// what they imported; another author's import of the same folder is not a replay.
TEST_F(docsearch_import, a_subject_names_the_author_whom_forget_then_forgets) {
  write("a.txt", "Alpha\nzebra words");
  write("b.txt", "Bravo\nmore zebra");
  auto plain = run(2);
  ASSERT_TRUE(plain.ok) << plain.error;
  auto ann = run(2, "", "ann/", "ann@example.org");
  ASSERT_TRUE(ann.ok) << ann.error;
  EXPECT_EQ(ann.replayed, 0u);
  auto log = rt_->read_log(1, 100);
  ASSERT_TRUE(log);
  ASSERT_EQ(log->size(), 4u);
  for (auto& e : *log)
    EXPECT_EQ(e.subject, e.key.rfind("ann/", 0) == 0 ? "ann@example.org" : "") << e.key;

  std::promise<derive::result<derive::erasure_receipt>> forgot;
  rt_->forget("ann@example.org", [&](auto r) { forgot.set_value(std::move(r)); });
  auto receipt = forgot.get_future().get();
  ASSERT_TRUE(receipt) << receipt.error().to_string();
  EXPECT_EQ(receipt->offsets, (std::vector<uint64_t>{3, 4}));
  EXPECT_EQ(document("ann/a.txt"), std::nullopt);
  EXPECT_EQ(document("a.txt"), (json{{"title", "Alpha"}, {"text", "zebra words"}}));
}

TEST_F(docsearch_import, in_auth_mode_a_token_imports_into_its_own_area_only) {
  restart_with_auth();
  write("a.txt", "Alpha\nzebra words");
  write("b.txt", "Bravo\nmore zebra");
  auto own = run(2, token("alice"), "users/alice/");
  ASSERT_TRUE(own.ok) << own.error;
  EXPECT_EQ(document("users/alice/a.txt"), (json{{"title", "Alpha"}, {"text", "zebra words"}}));
  uint64_t head = rt_->head();
  auto foreign = run(2, token("alice"), "users/bob/");
  EXPECT_FALSE(foreign.ok);
  EXPECT_NE(foreign.error.find("403"), std::string::npos) << foreign.error;
  auto anonymous = run(2, "", "users/alice/");
  EXPECT_FALSE(anonymous.ok);
  EXPECT_NE(anonymous.error.find("401"), std::string::npos) << anonymous.error;
  EXPECT_EQ(rt_->head(), head) << "refused imports append nothing";
  // The search query's `in` keeps to one area.
  auto hits = rt_->query("search", "search", {{"q", "zebra"}, {"in", "users/alice/"}});
  ASSERT_TRUE(hits);
  EXPECT_EQ((*hits)["hits"].size(), 2u);
  hits = rt_->query("search", "search", {{"q", "zebra"}, {"in", "users/bob/"}});
  ASSERT_TRUE(hits);
  EXPECT_EQ((*hits)["hits"].size(), 0u);
}

TEST_F(docsearch_import, an_unreachable_server_is_reported) {
  write("a.txt", "a");
  docsearch::import_options o;
  o.dir = (base_ / "corpus").string();
  o.url = "http://127.0.0.1:1";
  o.progress = false;
  std::ostringstream err;
  auto r = docsearch::import_directory(o, err);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("cannot connect"), std::string::npos) << r.error;
}

}  // namespace
