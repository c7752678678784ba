#include "docsearch/docsearch_views.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "docsearch/tokenizer.hpp"

namespace docsearch {
namespace {

using derive::errc;
using derive::json;
using derive::status;

std::string private_doc_key(std::string_view id) {
  return std::string(private_doc_prefix) + std::string(id);
}

status invalid(std::string message) { return {errc::invalid_event, std::move(message)}; }

status check_key(const derive::event_input& e) {
  if (e.key.empty()) {
    return invalid("key must be a non-empty document id for " + e.type + " events");
  }
  return status::ok();
}

status check_string_member(const json& data, const char* name) {
  auto it = data.find(name);
  if (it == data.end()) {
    return invalid(std::string("data.") + name + " is required for doc.put (a string)");
  }
  if (!it->is_string()) {
    return invalid(std::string("data.") + name + " must be a string, not " + it->type_name());
  }
  return status::ok();
}

// --- search view helpers ---

// Adds `id` to the sorted posting list of `word`.
void add_posting(derive::view_txn& tx, const std::string& word, const std::string& id) {
  json list = tx.get(word).value_or(json::array());
  if (!list.is_array()) list = json::array();
  auto pos = std::lower_bound(list.begin(), list.end(), id,
                              [](const json& a, const std::string& b) {
                                return a.get_ref<const std::string&>() < b;
                              });
  if (pos != list.end() && pos->get_ref<const std::string&>() == id) return;
  list.insert(pos, id);
  tx.put(word, std::move(list));
}

// Removes `id` from the posting list of `word`; erases the word when no
// document is left (the view never holds an empty array).
void remove_posting(derive::view_txn& tx, const std::string& word, const std::string& id) {
  auto current = tx.get(word);
  if (!current || !current->is_array()) return;
  json& list = *current;
  auto pos = std::lower_bound(list.begin(), list.end(), id,
                              [](const json& a, const std::string& b) {
                                return a.get_ref<const std::string&>() < b;
                              });
  if (pos == list.end() || pos->get_ref<const std::string&>() != id) return;
  list.erase(pos);
  if (list.empty()) {
    tx.erase(word);
  } else {
    tx.put(word, std::move(list));
  }
}

void add_to_count(derive::view_txn& tx, int64_t delta) {
  int64_t n = tx.get_private(private_count_key).value_or(json(0)).get<int64_t>() + delta;
  if (n == 0) {
    tx.erase_private(private_count_key);
  } else {
    tx.put_private(private_count_key, n);
  }
}

// Applies one change of the documents view to the search view.
void index_change(const derive::upstream_change& c, derive::view_txn& tx) {
  const std::string record_key = private_doc_key(c.key);
  std::optional<json> old_record = tx.get_private(record_key);
  std::optional<document> doc;
  if (c.value) doc = document_from_json(*c.value);

  std::map<std::string, int64_t> new_words;
  if (doc) new_words = term_frequencies(*doc);
  const json empty = json::object();
  const json& old_words = old_record ? old_record->value("words", empty) : empty;
  if (!old_words.is_object()) return;

  for (const auto& [word, tf] : old_words.items()) {
    if (!new_words.count(word)) remove_posting(tx, word, c.key);
  }
  for (const auto& [word, tf] : new_words) {
    if (!old_words.contains(word)) add_posting(tx, word, c.key);
  }

  if (!doc) {
    if (old_record) {
      tx.erase_private(record_key);
      add_to_count(tx, -1);
    }
    return;
  }
  json record = {{"title", doc->title}, {"words", new_words}};
  if (old_record && *old_record == record) return;
  tx.put_private(record_key, std::move(record));
  if (!old_record) add_to_count(tx, +1);
}

// --- search query helpers ---

// The value of `key` in the snapshot's state, or in its private state when
// `is_private`.
derive::result<std::optional<json>> read_json(const derive::view_snapshot& snap,
                                              std::string_view key, bool is_private = false) {
  auto raw = is_private ? snap.get_private(key) : snap.get(key);
  if (!raw) return raw.error();
  if (!raw->has_value()) return std::optional<json>{};
  return std::optional<json>{json::parse(**raw, nullptr, false)};
}

derive::result<size_t> parse_limit(const derive::query_params& params) {
  auto it = params.find("limit");
  if (it == params.end()) return size_t{0};
  const std::string& s = it->second;
  bool digits = !s.empty() && s.size() <= 5 &&
                std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  size_t n = digits ? std::stoul(s) : 0;
  if (n < 1 || n > 10000) {
    return status{errc::invalid_parameter, "limit must be an integer from 1 to 10000"};
  }
  return n;
}

struct hit {
  std::string id;
  std::string title;
  double score = 0;
};

}  // namespace

std::optional<document> parse_document(std::string_view data) {
  return document_from_json(json::parse(data, nullptr, false));
}

std::optional<document> document_from_json(const json& v) {
  if (!v.is_object()) return std::nullopt;
  auto title = v.find("title");
  auto text = v.find("text");
  if (title == v.end() || text == v.end() || !title->is_string() || !text->is_string()) {
    return std::nullopt;
  }
  return document{title->get<std::string>(), text->get<std::string>()};
}

status validate_put(const derive::event_input& e) {
  if (auto st = check_key(e); !st) return st;
  json data = json::parse(e.data, nullptr, false);
  if (!data.is_object()) {
    return invalid("data must be an object with string members title and text for doc.put");
  }
  if (auto st = check_string_member(data, "title"); !st) return st;
  return check_string_member(data, "text");
}

status validate_delete(const derive::event_input& e) { return check_key(e); }

std::map<std::string, int64_t> term_frequencies(const document& doc) {
  std::map<std::string, int64_t> tf;
  for (auto& w : tokenize(doc.title)) tf[std::move(w)] += 2;
  for (auto& w : tokenize(doc.text)) tf[std::move(w)] += 1;
  return tf;
}

derive::view_def documents_view() {
  return derive::view_def(std::string(documents_view_name), 1)
      .from_log()
      .apply([](const derive::event& e, derive::view_txn& tx) {
        if (e.key.empty()) return;
        if (e.type == put_type) {
          auto doc = parse_document(e.data);
          if (!doc) return;  // refused by validate_put; never in the log
          tx.put(e.key, json{{"title", doc->title},
                             {"text", doc->text},
                             {"updated", e.offset}});
        } else if (e.type == delete_type) {
          if (tx.get(e.key)) tx.erase(e.key);
        }
      });
}

derive::view_def search_view() {
  return derive::view_def(std::string(search_view_name), 1)
      .from_view(std::string(documents_view_name))
      .apply_change(index_change)
      .query("search", run_search);
}

derive::view_def stats_view() {
  return derive::view_def(std::string(stats_view_name), 1)
      .from_log()
      .apply([](const derive::event& e, derive::view_txn& tx) {
        if (e.key.empty() || (e.type != put_type && e.type != delete_type)) return;
        const std::string marker = private_doc_key(e.key);
        bool live = tx.get_private(marker).has_value();
        json totals = tx.get(totals_key).value_or(
            json{{"documents", 0}, {"puts", 0}, {"deletes", 0}});
        if (e.type == put_type) {
          if (!parse_document(e.data)) return;
          totals["puts"] = totals["puts"].get<int64_t>() + 1;
          if (!live) {
            tx.put_private(marker, true);
            totals["documents"] = totals["documents"].get<int64_t>() + 1;
          }
        } else {
          if (!live) return;  // deleting a missing document changes nothing
          tx.erase_private(marker);
          totals["documents"] = totals["documents"].get<int64_t>() - 1;
          totals["deletes"] = totals["deletes"].get<int64_t>() + 1;
        }
        tx.put(totals_key, std::move(totals));
      });
}

derive::result<json> run_search(const derive::view_snapshot& snap,
                                const derive::query_params& params) {
  auto limit = parse_limit(params);
  if (!limit) return limit.error();
  auto q = params.find("q");
  std::vector<std::string> words = tokenize(q == params.end() ? "" : q->second);
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  json result = {{"hits", json::array()}};
  if (words.empty()) return result;

  // Posting lists, smallest first; any missing word means no hits.
  std::vector<std::pair<std::string, std::vector<std::string>>> lists;
  for (const auto& w : words) {
    auto v = read_json(snap, w);
    if (!v) return v.error();
    if (!v->has_value() || !(*v)->is_array()) return result;
    lists.emplace_back(w, (*v)->get<std::vector<std::string>>());
  }
  std::sort(lists.begin(), lists.end(),
            [](const auto& a, const auto& b) { return a.second.size() < b.second.size(); });
  std::vector<std::string> ids = lists.front().second;
  for (size_t i = 1; i < lists.size() && !ids.empty(); ++i) {
    std::vector<std::string> both;
    std::set_intersection(ids.begin(), ids.end(), lists[i].second.begin(),
                          lists[i].second.end(), std::back_inserter(both));
    ids = std::move(both);
  }

  auto count = read_json(snap, private_count_key, true);
  if (!count) return count.error();
  double n = count->has_value() && (*count)->is_number() ? (*count)->get<double>() : 0.0;
  std::vector<hit> hits;
  for (const auto& id : ids) {
    auto record = read_json(snap, private_doc_key(id), true);
    if (!record) return record.error();
    if (!record->has_value() || !(*record)->is_object()) continue;
    const json& r = **record;
    hit h{id, r.value("title", std::string()), 0.0};
    const json& tf = r.value("words", json::object());
    for (const auto& [word, postings] : lists) {
      double df = static_cast<double>(postings.size());
      h.score += tf.value(word, 0.0) * std::log(1.0 + n / df);
    }
    h.score = std::round(h.score * 1e6) / 1e6;
    hits.push_back(std::move(h));
  }
  std::sort(hits.begin(), hits.end(), [](const hit& a, const hit& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
  if (*limit && hits.size() > *limit) hits.resize(*limit);
  for (auto& h : hits) {
    result["hits"].push_back({{"id", std::move(h.id)}, {"title", std::move(h.title)},
                              {"score", h.score}});
  }
  return result;
}

void install(derive::runtime& rt) {
  rt.add_view(documents_view());
  rt.add_view(search_view());
  rt.add_view(stats_view());
  rt.add_validator(std::string(put_type), validate_put);
  rt.add_validator(std::string(delete_type), validate_delete);
}

}  // namespace docsearch
