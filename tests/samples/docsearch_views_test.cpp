// The docsearch sample's views, validators and query, driven through a real
// runtime (relaxed durability) on a temporary data directory.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <cmath>
#include <filesystem>
#include <future>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <derive/runtime.hpp>
#include "core/append_check.hpp"
#include "samples/docsearch/docsearch_views.hpp"
#include "samples/docsearch/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;
using derive::json;
using namespace std::chrono_literals;

class docsearch_views : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("derive-docsearch-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    derive::runtime_options options;
    options.data_dir = dir_.string();
    options.storage.mode = derive::durability::relaxed;
    options.storage.map_size = uint64_t{1} << 30;
    rt_ = std::make_unique<derive::runtime>(options);
    docsearch::install(*rt_);
    auto st = rt_->start();
    ASSERT_TRUE(st) << st.to_string();
  }

  void TearDown() override {
    if (rt_) rt_->stop();
    rt_.reset();
    fs::remove_all(dir_);
  }

  // Appends `events` (one event object or an array) as one request.
  derive::result<derive::append_outcome> append(const json& events) {
    auto parsed = derive::append_from_json(events, std::nullopt);
    if (!parsed) return parsed.error();
    std::promise<derive::result<derive::append_outcome>> done;
    rt_->append(std::move(parsed->request),
                [&done](derive::result<derive::append_outcome> r) { done.set_value(r); });
    return done.get_future().get();
  }

  void put(const std::string& id, const std::string& title, const std::string& text) {
    auto r = append(put_event(id, title, text));
    ASSERT_TRUE(r) << r.error().to_string();
  }
  void remove(const std::string& id) {
    auto r = append(json{{"type", "doc.delete"}, {"key", id}});
    ASSERT_TRUE(r) << r.error().to_string();
  }
  static json put_event(const std::string& id, const std::string& title,
                        const std::string& text) {
    return {{"type", "doc.put"}, {"key", id}, {"data", {{"title", title}, {"text", text}}}};
  }

  // Waits until every view has applied the whole log.
  void catch_up() {
    uint64_t head = rt_->head();
    for (const char* view : {"documents", "search", "stats"}) {
      std::promise<derive::status> done;
      rt_->wait_for(view, head, 60s, [&done](derive::status st) { done.set_value(st); });
      auto st = done.get_future().get();
      ASSERT_TRUE(st) << view << ": " << st.to_string();
    }
  }

  // The whole state of `view` (key -> value) from one snapshot.
  json state(const std::string& view) {
    json out = json::object();
    auto snap = rt_->snapshot(view);
    EXPECT_TRUE(snap);
    if (!snap) return out;
    std::string start;
    while (true) {
      auto page = snap->range("", start, 10000);
      EXPECT_TRUE(page);
      if (!page) return out;
      for (auto& kv : page->items) out[kv.key] = json::parse(kv.value);
      if (!page->next) return out;
      start = *page->next;
    }
  }

  std::optional<json> value(const std::string& view, const std::string& key) {
    json s = state(view);
    if (!s.contains(key)) return std::nullopt;
    return s[key];
  }

  // The private values of `keys` in `view` that exist (key -> value), from one
  // snapshot.
  json private_values(const std::string& view, const std::vector<std::string>& keys) {
    json out = json::object();
    auto snap = rt_->snapshot(view);
    EXPECT_TRUE(snap);
    if (!snap) return out;
    for (const auto& key : keys) {
      auto v = snap->get_private(key);
      EXPECT_TRUE(v) << v.error().to_string();
      if (v && *v) out[key] = json::parse(**v);
    }
    return out;
  }

  derive::result<json> search(const std::string& q, std::optional<std::string> limit = {}) {
    derive::query_params params{{"q", q}};
    if (limit) params["limit"] = *limit;
    return rt_->query("search", "search", params);
  }

  std::vector<std::string> hit_ids(const std::string& q) {
    auto r = search(q);
    EXPECT_TRUE(r) << r.error().to_string();
    std::vector<std::string> ids;
    if (r) {
      for (auto& h : (*r)["hits"]) ids.push_back(h["id"].get<std::string>());
    }
    return ids;
  }

  fs::path dir_;
  std::unique_ptr<derive::runtime> rt_;
};

// --- validators ---

TEST_F(docsearch_views, put_without_title_is_refused_naming_the_field) {
  auto r = append(json{{"type", "doc.put"}, {"key", "a"}, {"data", {{"text", "x"}}}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), derive::errc::invalid_event);
  EXPECT_NE(r.error().message().find("title"), std::string::npos) << r.error().message();
  EXPECT_EQ(rt_->head(), 0u);
}

TEST_F(docsearch_views, put_with_non_string_text_is_refused_naming_the_field) {
  auto r = append(json{{"type", "doc.put"}, {"key", "a"},
                       {"data", {{"title", "t"}, {"text", 5}}}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), derive::errc::invalid_event);
  EXPECT_NE(r.error().message().find("text"), std::string::npos) << r.error().message();
}

TEST_F(docsearch_views, put_whose_data_is_not_an_object_is_refused) {
  auto r = append(json{{"type", "doc.put"}, {"key", "a"}, {"data", "hello"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), derive::errc::invalid_event);
  EXPECT_NE(r.error().message().find("data"), std::string::npos);
}

TEST_F(docsearch_views, put_and_delete_need_a_key) {
  auto p = append(json{{"type", "doc.put"}, {"data", {{"title", "t"}, {"text", "x"}}}});
  auto d = append(json{{"type", "doc.delete"}, {"key", ""}});
  ASSERT_FALSE(p);
  ASSERT_FALSE(d);
  EXPECT_NE(p.error().message().find("key"), std::string::npos);
  EXPECT_NE(d.error().message().find("key"), std::string::npos);
}

TEST_F(docsearch_views, one_invalid_event_refuses_the_whole_array) {
  auto r = append(json::array({put_event("a", "t", "x"),
                               json{{"type", "doc.put"}, {"key", "b"}, {"data", {{"title", 1}}}}}));
  ASSERT_FALSE(r);
  EXPECT_EQ(rt_->head(), 0u);
}

TEST_F(docsearch_views, validators_accept_extra_data_members_and_other_event_types) {
  EXPECT_TRUE(docsearch::validate_put(
      {"doc.put", "a", "", R"({"title":"t","text":"x","tags":["y"]})"}));
  EXPECT_TRUE(append(json{{"type", "note.add"}, {"key", ""}, {"data", 42}}));
}

// --- views ---

TEST_F(docsearch_views, documents_holds_title_text_and_offset_of_last_put) {
  put("a", "First", "one");
  put("a", "Second", "two");
  catch_up();
  EXPECT_EQ(value("documents", "a"),
            (json{{"title", "Second"}, {"text", "two"}, {"updated", 2}}));
}

TEST_F(docsearch_views, other_event_types_change_no_view) {
  ASSERT_TRUE(append(json{{"type", "doc.other"}, {"key", "a"}, {"data", {{"title", "t"}}}}));
  catch_up();
  EXPECT_EQ(state("documents"), json::object());
  EXPECT_EQ(state("search"), json::object());
  EXPECT_EQ(state("stats"), json::object());
}

TEST_F(docsearch_views, deleting_a_missing_document_changes_nothing) {
  put("a", "t", "x");
  remove("missing");
  catch_up();
  EXPECT_EQ(value("stats", "totals"), (json{{"documents", 1}, {"puts", 1}, {"deletes", 0}}));
}

TEST_F(docsearch_views, stats_is_empty_until_the_first_put_then_holds_only_totals) {
  remove("missing");
  catch_up();
  EXPECT_EQ(state("stats"), json::object());
  put("a", "t", "x");
  remove("a");
  catch_up();
  EXPECT_EQ(state("stats"),
            (json{{"totals", {{"documents", 0}, {"puts", 1}, {"deletes", 1}}}}));
}

TEST_F(docsearch_views, stats_keeps_live_documents_in_private_state) {
  put("a", "t", "x");
  put("b", "t", "y");
  remove("a");
  catch_up();
  EXPECT_EQ(private_values("stats", {"doc:a", "doc:b"}), (json{{"doc:b", true}}));
  EXPECT_EQ(state("stats").size(), 1u);
}

TEST_F(docsearch_views, stats_counts_puts_live_documents_and_effective_deletes) {
  put("a", "t", "x");
  put("a", "t", "y");
  put("b", "t", "z");
  remove("a");
  remove("a");
  catch_up();
  EXPECT_EQ(value("stats", "totals"), (json{{"documents", 1}, {"puts", 3}, {"deletes", 1}}));
}

TEST_F(docsearch_views, search_has_one_key_per_word_and_document_valued_by_weighted_tf) {
  put("b", "Hello", "world");
  put("a", "hello", "there hello");
  catch_up();
  EXPECT_EQ(state("search"), (json{{"hello/a", 3}, {"hello/b", 2}, {"there/a", 1},
                                   {"world/b", 1}}));
}

TEST_F(docsearch_views, search_prefix_of_a_word_selects_exactly_its_documents) {
  put("a", "log", "logs");
  put("b", "log", "");
  catch_up();
  auto snap = rt_->snapshot("search");
  ASSERT_TRUE(snap);
  auto page = snap->range("log/", "", 100);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->items[0].key, "log/a");
  EXPECT_EQ(page->items[1].key, "log/b");
}

TEST_F(docsearch_views, search_drops_words_a_document_no_longer_contains) {
  put("a", "alpha", "beta");
  put("a", "alpha", "gamma");
  catch_up();
  EXPECT_EQ(value("search", "beta/a"), std::nullopt);
  EXPECT_EQ(value("search", "gamma/a"), json(1));
  EXPECT_EQ(private_values("search", {"doc:a"}), (json{{"doc:a", "alpha gamma"}}));
  EXPECT_EQ(hit_ids("beta"), std::vector<std::string>{});
  EXPECT_EQ(hit_ids("gamma"), std::vector<std::string>{"a"});
}

TEST_F(docsearch_views, an_update_changes_only_the_keys_whose_value_changed) {
  put("a", "alpha", "beta gamma delta");
  put("b", "alpha", "beta");
  put("a", "alpha", "beta beta gamma epsilon");  // delta gone, beta 1 -> 2, epsilon new
  catch_up();
  uint64_t last = rt_->head();
  auto page = rt_->changes_since("search", last - 1, 10);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->entries.size(), 1u);
  std::map<std::string, std::optional<std::string>> changed;
  for (auto& c : page->entries[0].changes) changed[c.key] = c.value;
  EXPECT_EQ(changed, (std::map<std::string, std::optional<std::string>>{
                         {"beta/a", "2"}, {"delta/a", std::nullopt}, {"epsilon/a", "1"}}));
}

TEST_F(docsearch_views, a_put_that_changes_no_word_changes_no_key) {
  put("a", "alpha", "beta");
  put("a", "Alpha", "BETA!");
  catch_up();
  auto page = rt_->changes_since("search", rt_->head() - 1, 10);
  ASSERT_TRUE(page);
  for (auto& e : page->entries) EXPECT_TRUE(e.changes.empty()) << e.offset;
  EXPECT_EQ(private_values("search", {"title:a"}), (json{{"title:a", "Alpha"}}));
  EXPECT_EQ(search("beta").value()["hits"][0]["title"], "Alpha");
}

TEST_F(docsearch_views, search_holds_only_postings_and_keeps_its_records_in_private_state) {
  put("a", "Hello", "world world");
  put("b", "Bye", "world");
  remove("b");
  catch_up();
  EXPECT_EQ(state("search"), (json{{"hello/a", 2}, {"world/a", 2}}));
  // No document frequencies: the query counts a word's postings.
  EXPECT_EQ(private_values("search", {"doc:a", "doc:b", "title:a", "title:b", "df:hello",
                                      "df:world", "df:bye", "count"}),
            (json{{"doc:a", "hello world"}, {"title:a", "Hello"}, {"count", 1}}));
}

// Each word once, in byte order, its title occurrences weighted; checked
// against a plain map of tokenize()'s words, for a text with more distinct
// words than the counting table first holds.
TEST(docsearch_records, term_frequencies_counts_each_word_once_in_byte_order) {
  docsearch::document d{"Zebra the zebra", "the Über über ÜBER zebra a"};
  for (int i = 0; i < 300; ++i) d.text += " w" + std::to_string(i % 150);
  std::map<std::string, int64_t> expected;
  for (auto& w : docsearch::tokenize(d.title)) expected[w] += 3;
  for (auto& w : docsearch::tokenize(d.text)) expected[w] += 1;
  const auto counts = docsearch::term_frequencies(d, 3);
  EXPECT_EQ(docsearch::word_counts(expected.begin(), expected.end()), counts);
  EXPECT_EQ(counts.front(), (std::pair<std::string, int64_t>{"a", 1}));
  EXPECT_EQ(counts.back(), (std::pair<std::string, int64_t>{"über", 3}));
  EXPECT_EQ(expected["zebra"], 7);
  EXPECT_EQ(expected["w7"], 2);
}

// The stats view checks a doc.put's data without building it: the same
// answer as parse_document, on documents and on everything that is not one.
TEST(docsearch_records, is_document_agrees_with_parse_document) {
  const std::vector<std::string> inputs = {
      R"({"title":"t","text":"x"})", R"({"text":"x","title":"t","more":[1,{"a":2}]})",
      R"({"title":"t"})", R"({"title":1,"text":"x"})", R"({"title":"t","text":null})",
      R"({"title":"t","text":{"a":"b"}})", R"({"title":"t","text":["x"]})",
      R"({"title":"t","text":"x","title":2})", R"({"title":2,"text":"x","title":"t"})",
      R"({"a":{"title":"t","text":"x"}})", R"([{"title":"t","text":"x"}])", R"("title")",
      R"(3)", R"(null)", R"()", R"({"title":"t","text":"x"} trailing)",
      R"({"title":"t","text":"x")", R"(  {"title" : "ü\u00e9", "text" : ""}  )",
      R"({"title":"t","text":"x\ud800"})"};
  for (const auto& data : inputs)
    EXPECT_EQ(docsearch::is_document(data), docsearch::parse_document(data).has_value()) << data;
  EXPECT_TRUE(docsearch::is_document(R"({"title":"t","text":"x","title":"u"})"));
  EXPECT_FALSE(docsearch::is_document(R"({"title":"t","text":"x","text":2})"));
}

TEST(docsearch_records, indexed_words_reads_word_lists_and_older_tf_objects) {
  using set = std::set<std::string>;
  EXPECT_EQ(docsearch::indexed_words(json("hello world")), (set{"hello", "world"}));
  EXPECT_EQ(docsearch::indexed_words(json("")), set{});
  EXPECT_EQ(docsearch::indexed_words(json{{"hello", 2}, {"world", 1}}), (set{"hello", "world"}));
  EXPECT_EQ(docsearch::indexed_words(json(3)), set{});
}

TEST_F(docsearch_views, search_has_no_entry_after_the_last_document_is_deleted) {
  put("a", "unique", "word");
  remove("a");
  catch_up();
  EXPECT_EQ(state("search"), json::object());
  EXPECT_EQ(private_values("search", {"doc:a", "title:a", "df:unique", "df:word", "count"}),
            json::object());
  EXPECT_EQ(hit_ids("unique"), std::vector<std::string>{});
}

// --- the search query ---

TEST_F(docsearch_views, query_ranks_by_tf_idf_with_title_words_counting_twice) {
  put("a", "Apple pie", "apple apple");
  put("b", "Banana", "apple");
  put("c", "Cherry", "stone");
  catch_up();
  auto r = search("apple");
  ASSERT_TRUE(r);
  ASSERT_EQ((*r)["hits"].size(), 2u);
  EXPECT_EQ((*r)["hits"][0]["id"], "a");
  EXPECT_EQ((*r)["hits"][0]["title"], "Apple pie");
  EXPECT_NEAR((*r)["hits"][0]["score"].get<double>(), 4 * std::log(1.0 + 3.0 / 2.0), 1e-5);
  EXPECT_NEAR((*r)["hits"][1]["score"].get<double>(), 1 * std::log(1.0 + 3.0 / 2.0), 1e-5);
}

TEST_F(docsearch_views, query_needs_every_word_and_ignores_case) {
  put("a", "Apple pie", "sweet");
  put("b", "Apple", "sour");
  catch_up();
  EXPECT_EQ(hit_ids("APPLE, sweet!"), std::vector<std::string>{"a"});
  EXPECT_EQ(hit_ids("apple missing"), std::vector<std::string>{});
}

TEST_F(docsearch_views, query_matches_non_ascii_words_case_insensitively) {
  put("a", "Ελληνικά", "КИРИЛЛИЦА café");
  catch_up();
  EXPECT_EQ(hit_ids("ελληνικά"), std::vector<std::string>{"a"});
  EXPECT_EQ(hit_ids("кириллица CAFÉ"), std::vector<std::string>{"a"});
}

TEST_F(docsearch_views, empty_query_has_no_hits) {
  put("a", "t", "x");
  catch_up();
  EXPECT_EQ(hit_ids(""), std::vector<std::string>{});
  EXPECT_EQ(hit_ids(" ,.; "), std::vector<std::string>{});
}

TEST_F(docsearch_views, equal_scores_are_ordered_by_id) {
  put("b", "same", "text");
  put("a", "same", "text");
  catch_up();
  EXPECT_EQ(hit_ids("same"), (std::vector<std::string>{"a", "b"}));
}

TEST_F(docsearch_views, query_limit_is_checked_and_applied) {
  put("a", "w", "");
  put("b", "w", "");
  catch_up();
  auto one = search("w", "1");
  ASSERT_TRUE(one);
  EXPECT_EQ((*one)["hits"].size(), 1u);
  auto bad = search("w", "abc");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), derive::errc::invalid_parameter);
}

TEST_F(docsearch_views, query_reads_postings_over_several_pages_and_intersects_rarest_first) {
  // 2,500 documents with "common" (more than two range pages), every 5th with
  // "fifth", every 7th with "seventh".
  json batch = json::array();
  for (int i = 0; i < 2500; ++i) {
    std::string text = "common";
    if (i % 5 == 0) text += " fifth";
    if (i % 7 == 0) text += " seventh seventh";
    char id[16];
    std::snprintf(id, sizeof id, "d%04d", i);
    batch.push_back(put_event(id, "", text));
    if (batch.size() == 500) {
      ASSERT_TRUE(append(batch));
      batch = json::array();
    }
  }
  catch_up();
  EXPECT_EQ(hit_ids("common").size(), 2500u);
  auto ids = hit_ids("seventh fifth common");
  ASSERT_EQ(ids.size(), 72u);  // multiples of 35 below 2500
  EXPECT_EQ(ids.front(), "d0000");
  EXPECT_EQ(ids.back(), "d2485");
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));  // equal scores: by id
  auto r = search("seventh common", "3");
  ASSERT_TRUE(r);
  ASSERT_EQ((*r)["hits"].size(), 3u);
  double expected = 2 * std::log(1.0 + 2500.0 / 358.0) + std::log(1.0 + 2500.0 / 2500.0);
  EXPECT_NEAR((*r)["hits"][0]["score"].get<double>(), expected, 1e-5);
}

// --- against a recomputation ---

// A straightforward model of the three views, computed from the event list.
struct model {
  std::map<std::string, json> documents;
  std::set<std::string> ids;    // every id an event named
  std::set<std::string> words;  // every word a put contained
  int64_t puts = 0;
  int64_t deletes = 0;

  void apply(uint64_t offset, const json& e) {
    const std::string id = e["key"];
    ids.insert(id);
    if (e["type"] == "doc.put") {
      ++puts;
      docsearch::document d{e["data"]["title"], e["data"]["text"]};
      for (auto& [w, tf] : docsearch::term_frequencies(d)) words.insert(w);
      documents[id] = {{"title", e["data"]["title"]}, {"text", e["data"]["text"]},
                       {"updated", offset}};
    } else if (documents.erase(id)) {
      ++deletes;
    }
  }

  json documents_state() const {
    json out = json::object();
    for (auto& [id, doc] : documents) out[id] = doc;
    return out;
  }

  // The whole search view: "<word>/<id>" -> tf for the live documents.
  json search_postings() const {
    json out = json::object();
    for (auto& [id, doc] : documents) {
      docsearch::document d{doc["title"], doc["text"]};
      for (auto& [w, tf] : docsearch::term_frequencies(d)) out[w + "/" + id] = tf;
    }
    return out;
  }

  json totals() const {
    return {{"documents", documents.size()}, {"puts", puts}, {"deletes", deletes}};
  }

  // The whole stats view: "totals" from the first put on (a delete before any
  // put removed nothing), and nothing else.
  json stats_state() const {
    if (puts == 0) return json::object();
    return {{"totals", totals()}};
  }

  // The private keys "doc:<id>" and "title:<id>" of every id an event named,
  // "df:<word>" of every word a put contained (never written since
  // 2026-12-02: df is counted from the postings), and `extra`.
  std::vector<std::string> private_keys(std::vector<std::string> extra = {}) const {
    for (auto& id : ids) {
      extra.push_back("doc:" + id);
      extra.push_back("title:" + id);
    }
    for (auto& w : words) extra.push_back("df:" + w);
    return extra;
  }

  // The private state of search: per live document its words and title,
  // and N.
  json search_private() const {
    json out = json::object();
    for (auto& [id, doc] : documents) {
      docsearch::document d{doc["title"], doc["text"]};
      auto tf = docsearch::term_frequencies(d);
      std::string record;
      for (auto& [w, n] : tf) record += (record.empty() ? "" : " ") + w;
      out["doc:" + id] = record;
      out["title:" + id] = doc["title"];
    }
    if (!documents.empty()) out["count"] = documents.size();
    return out;
  }

  // The private state of stats: a marker per live document.
  json stats_private() const {
    json out = json::object();
    for (auto& [id, doc] : documents) out["doc:" + id] = true;
    return out;
  }
};

// Random documents over a small vocabulary in several scripts and cases.
class event_generator {
 public:
  explicit event_generator(uint32_t seed) : rng_(seed) {}

  json next() {
    std::string id = "doc-" + std::to_string(pick(250));
    if (pick(100) < 30) return {{"type", "doc.delete"}, {"key", id}};
    return {{"type", "doc.put"},
            {"key", id},
            {"data", {{"title", phrase(1 + pick(4))}, {"text", phrase(pick(40))}}}};
  }

 private:
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  std::string phrase(size_t words) {
    static const std::vector<std::string> vocabulary = {
        "log", "Log", "VIEW", "view", "event", "offset", "actor", "derive", "state",
        "stream", "index", "search", "Café", "naïve", "ΟΔΟΣ", "οδός", "Мир", "мир",
        "日本語", "한국어", "x42", "42", "a", "B", "straße", "İstanbul", "zebra", "quartz",
        "lmdb", "caf", "beast", "socket", "browser", "node"};
    static const std::vector<std::string> separators = {" ", ", ", ". ", "-", "_", "\n", "! ",
                                                        " (", ") ", "/"};
    std::string out;
    for (size_t i = 0; i < words; ++i) {
      if (i) out += separators[pick(separators.size())];
      out += vocabulary[pick(vocabulary.size())];
    }
    return out;
  }
  std::mt19937 rng_;
};

TEST_F(docsearch_views, ten_thousand_random_puts_and_deletes_match_a_recomputation) {
  event_generator gen(20240501);
  model expected;
  constexpr int requests = 100;
  constexpr int per_request = 100;
  for (int r = 0; r < requests; ++r) {
    json batch = json::array();
    for (int i = 0; i < per_request; ++i) batch.push_back(gen.next());
    auto outcome = append(batch);
    ASSERT_TRUE(outcome) << outcome.error().to_string();
    for (int i = 0; i < per_request; ++i) {
      expected.apply(outcome->first_offset + static_cast<uint64_t>(i), batch[i]);
    }
  }
  ASSERT_EQ(rt_->head(), uint64_t{requests * per_request});
  ASSERT_GT(expected.deletes, 100);  // the run exercised deletes and updates
  ASSERT_GT(expected.documents.size(), 100u);
  catch_up();

  EXPECT_EQ(state("documents"), expected.documents_state());
  EXPECT_EQ(state("stats"), expected.stats_state());
  json search = state("search");
  EXPECT_EQ(search, expected.search_postings());
  for (auto& [key, tf] : search.items()) {
    ASSERT_TRUE(tf.is_number_integer()) << key;
    EXPECT_GT(tf.get<int64_t>(), 0) << key;
  }
  EXPECT_EQ(private_values("search", expected.private_keys({"count"})),
            expected.search_private());
  EXPECT_EQ(private_values("stats", expected.private_keys()), expected.stats_private());
}

}  // namespace

namespace {

// A synthetic corpus: words drawn from a Zipf distribution (s = 1) over a
// vocabulary of 5,000 words, as natural language roughly is, so that the
// most common words occur in nearly every document.
class zipf_corpus {
 public:
  explicit zipf_corpus(uint32_t seed) : rng_(seed) {
    std::vector<double> weights;
    for (int rank = 1; rank <= 5000; ++rank) weights.push_back(1.0 / rank);
    dist_ = std::discrete_distribution<int>(weights.begin(), weights.end());
  }
  std::string phrase(int words) {
    std::string out;
    for (int i = 0; i < words; ++i) {
      if (i) out += ' ';
      out += "w" + std::to_string(dist_(rng_));
    }
    return out;
  }

 private:
  std::mt19937 rng_;
  std::discrete_distribution<int> dist_;
};

}  // namespace

// Bytes the search view writes for one new document (its changelog entry:
// keys and values) must not grow with the corpus: the quadratic shape of a
// word -> [ids] layout cannot come back unnoticed.
TEST_F(docsearch_views, bytes_written_per_document_by_the_search_view_do_not_grow_with_the_corpus) {
  zipf_corpus corpus(7);
  constexpr int per_request = 100;
  auto add_documents = [&](int first, int last) {
    for (int n = first; n <= last; n += per_request) {
      json batch = json::array();
      for (int i = n; i < n + per_request && i <= last; ++i) {
        char id[16];
        std::snprintf(id, sizeof id, "doc-%05d", i);
        batch.push_back(put_event(id, corpus.phrase(3), corpus.phrase(150)));
      }
      ASSERT_TRUE(append(batch));
    }
  };

  // Document n is at offset n. Average over the 20 documents ending at
  // `last`, read right after they were indexed (so that no changelog
  // retention policy can have pruned them).
  auto bytes_per_document = [&](uint64_t last, size_t* keys) {
    uint64_t bytes = 0;
    size_t changed = 0;
    for (uint64_t offset = last - 19; offset <= last; ++offset) {
      auto page = rt_->changes_since("search", offset - 1, 1);
      EXPECT_TRUE(page && page->served);
      if (!page || page->entries.empty()) continue;
      EXPECT_EQ(page->entries[0].offset, offset);
      for (auto& c : page->entries[0].changes) {
        bytes += c.key.size() + (c.value ? c.value->size() : 0);
        ++changed;
      }
    }
    *keys = changed / 20;
    return static_cast<double>(bytes) / 20.0;
  };
  size_t keys_200 = 0, keys_2000 = 0;
  add_documents(1, 200);
  catch_up();
  ASSERT_EQ(rt_->head(), 200u);
  double at_200 = bytes_per_document(200, &keys_200);
  add_documents(201, 2000);
  catch_up();
  ASSERT_EQ(rt_->head(), 2000u);
  double at_2000 = bytes_per_document(2000, &keys_2000);
  std::cout << "search view changelog bytes per document: 200th " << at_200 << " ("
            << keys_200 << " keys), 2000th " << at_2000 << " (" << keys_2000 << " keys)\n";
  RecordProperty("bytes_per_document_200", std::to_string(at_200));
  RecordProperty("bytes_per_document_2000", std::to_string(at_2000));
  EXPECT_GT(at_200, 0.0);
  EXPECT_LE(at_2000, 2.0 * at_200);
}
