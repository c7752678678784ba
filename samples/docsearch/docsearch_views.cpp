#include "docsearch/docsearch_views.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <set>
#include <vector>

#include "docsearch/tokenizer.hpp"

namespace docsearch {

std::string posting_key(std::string_view word, std::string_view id) {
  std::string k;
  k.reserve(word.size() + 1 + id.size());
  k.append(word).append(1, posting_separator).append(id);
  return k;
}

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
//
// Public keys: "<word>/<id>" -> tf. Private keys: "doc:<id>" -> its words
// (what the document indexed), "title:<id>" -> its title, "count" -> the
// number of live documents. A word's document frequency is the number of its
// postings, counted by the query. Every write below is proportional to the
// document being indexed, never to the corpus.

std::string private_key(std::string_view prefix, std::string_view rest) {
  return std::string(prefix) + std::string(rest);
}

// Adds `delta` to the private counter `key`, erasing it at zero.
void add_to_counter(derive::view_txn& tx, const std::string& key, int64_t delta) {
  auto current = tx.get_private(key);
  int64_t n = (current && current->is_number_integer() ? current->get<int64_t>() : 0) + delta;
  if (n <= 0) {
    tx.erase_private(key);
  } else {
    tx.put_private(key, n);
  }
}

// The "doc:<id>" record of `words`: the words in byte order, ' ' between them.
std::string word_record(const word_counts& words) {
  std::string record;
  for (const auto& [word, tf] : words) {
    if (!record.empty()) record += ' ';
    record += word;
  }
  return record;
}

// Applies one change of the documents view to the search view, a title word
// counting `title_weight` times.
void index_change(const derive::upstream_change& c, derive::view_txn& tx, int64_t title_weight) {
  const std::string record_key = private_doc_key(c.key);
  const std::string title_key = private_key(private_title_prefix, c.key);
  std::optional<json> old_record = tx.get_private(record_key);
  std::optional<document> doc;
  if (c.value) doc = document_from_json(*c.value);

  word_counts new_words;
  if (doc) new_words = term_frequencies(*doc, title_weight);
  const std::set<std::string> old_words =
      old_record ? indexed_words(*old_record) : std::set<std::string>{};

  std::string key;  // one buffer for every posting key of the document
  auto posting = [&](std::string_view word) -> const std::string& {
    key.assign(word).append(1, posting_separator).append(c.key);
    return key;
  };
  // Words the document no longer contains.
  auto by_word = [](const auto& entry, const std::string& w) { return entry.first < w; };
  for (const auto& word : old_words) {
    auto it = std::lower_bound(new_words.begin(), new_words.end(), word, by_word);
    if (it == new_words.end() || it->first != word) tx.erase(posting(word));
  }
  // Every word's frequency (a put of the value a key has records nothing).
  for (const auto& [word, tf] : new_words) tx.put(posting(word), tf);

  if (!doc) {
    if (old_record) {
      tx.erase_private(record_key);
      tx.erase_private(title_key);
      add_to_counter(tx, std::string(private_count_key), -1);
    }
    return;
  }
  json record = word_record(new_words);
  if (!old_record || *old_record != record) tx.put_private(record_key, std::move(record));
  auto old_title = tx.get_private(title_key);
  if (!old_title || *old_title != json(doc->title)) tx.put_private(title_key, doc->title);
  if (!old_record) add_to_counter(tx, std::string(private_count_key), +1);
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

// A JSON integer value (compact text), or nullopt.
std::optional<int64_t> parse_integer(std::string_view text) {
  json v = json::parse(text, nullptr, false);
  if (!v.is_number_integer()) return std::nullopt;
  return v.get<int64_t>();
}

// The integer value of `key` (nullopt when absent or not an integer).
derive::result<std::optional<int64_t>> read_integer(const derive::view_snapshot& snap,
                                                    std::string_view key,
                                                    bool is_private = false) {
  auto raw = is_private ? snap.get_private(key) : snap.get(key);
  if (!raw) return raw.error();
  if (!raw->has_value()) return std::optional<int64_t>{};
  return parse_integer(**raw);
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

namespace {

// Reads a doc.put's data as parse_document does, without building it: whether
// it is an object whose last "title" and last "text" members are strings (the
// last: a repeated member replaces the earlier one, as json::parse does).
class document_check final : public json::json_sax_t {
 public:
  bool ok() const { return title_ && text_; }
  bool null() override { return value(false); }
  bool boolean(bool) override { return value(false); }
  bool number_integer(number_integer_t) override { return value(false); }
  bool number_unsigned(number_unsigned_t) override { return value(false); }
  bool number_float(number_float_t, const string_t&) override { return value(false); }
  bool string(string_t&) override { return value(true); }
  bool binary(binary_t&) override { return value(false); }
  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    if (depth_ == 1) member_ = k == "title" ? &title_ : k == "text" ? &text_ : nullptr;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  // A value; false (stop: no document) for a value that is not in an object.
  bool value(bool is_string) {
    if (depth_ == 1 && member_) *member_ = is_string;
    return depth_ > 0;
  }
  bool open(bool object) {
    if (depth_ == 0 && !object) return false;  // an array is no document
    value(false);  // a member whose value is an object or an array is no string
    ++depth_;
    return true;
  }
  bool close() {
    --depth_;
    return true;
  }

  int depth_ = 0;
  bool title_ = false, text_ = false;
  bool* member_ = nullptr;
};

}  // namespace

bool is_document(std::string_view data) {
  document_check check;
  return json::sax_parse(data, &check, json::input_format_t::json, true) && check.ok();
}

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

word_counts term_frequencies(const document& doc, int64_t title_weight) {
  // Each distinct word once (its bytes in one buffer), found by hash in an
  // open-addressing table of indexes; then sorted, distinct words only (a
  // manual page has thousands of words, a few hundred distinct).
  struct distinct {
    uint32_t at, size;
    int64_t tf;
  };
  std::string bytes;
  std::vector<distinct> words;
  std::vector<uint32_t> table(64, UINT32_MAX);  // a power of two; UINT32_MAX: empty
  auto view = [&](const distinct& d) { return std::string_view(bytes).substr(d.at, d.size); };
  auto slot_of = [&](std::string_view w) {
    size_t i = std::hash<std::string_view>()(w) & (table.size() - 1);
    while (table[i] != UINT32_MAX && view(words[table[i]]) != w) i = (i + 1) & (table.size() - 1);
    return i;
  };
  auto count = [&](std::string_view text, int64_t weight) {
    std::string_view w;
    for (word_reader reader(text); reader.next(w);) {
      size_t i = slot_of(w);
      if (table[i] != UINT32_MAX) {
        words[table[i]].tf += weight;
        continue;
      }
      table[i] = static_cast<uint32_t>(words.size());
      words.push_back({static_cast<uint32_t>(bytes.size()), static_cast<uint32_t>(w.size()), weight});
      bytes.append(w);
      if (2 * words.size() > table.size()) {  // keep it at most half full
        table.assign(2 * table.size(), UINT32_MAX);
        for (uint32_t n = 0; n < words.size(); ++n) table[slot_of(view(words[n]))] = n;
      }
    }
  };
  count(doc.title, title_weight);
  count(doc.text, 1);
  std::sort(words.begin(), words.end(),
            [&](const distinct& a, const distinct& b) { return view(a) < view(b); });
  word_counts out;
  out.reserve(words.size());
  for (const auto& d : words) out.emplace_back(view(d), d.tf);
  return out;
}

std::set<std::string> indexed_words(const json& record) {
  std::set<std::string> words;
  if (record.is_object()) {
    for (const auto& [word, tf] : record.items()) words.insert(word);
  } else if (record.is_string()) {
    const auto& text = record.get_ref<const std::string&>();
    for (size_t at = 0; at < text.size();) {
      size_t end = std::min(text.find(' ', at), text.size());
      if (end > at) words.insert(text.substr(at, end - at));
      at = end + 1;
    }
  }
  return words;
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

derive::view_def search_view(uint32_t version) {
  // Version 2: the fine-grained "<word>/<id>" layout (version 1 mapped a word
  // to an array of ids). Version 3: the same with a title boost (a title word
  // counts title_boost_weight times, not twice), built beside version 2 and
  // cut over when ready (docs/storage.md, "View versions").
  const int64_t title_weight = version >= 3 ? title_boost_weight : 2;
  return derive::view_def(std::string(search_view_name), version)
      .from_view(std::string(documents_view_name))
      .apply_change([title_weight](const derive::upstream_change& c, derive::view_txn& tx) {
        index_change(c, tx, title_weight);
      })
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
          if (!is_document(e.data)) return;
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

  // Document frequencies: the number of each word's postings (a walk over
  // keys, no value decoded); any missing word means no hits.
  struct query_word {
    std::string word;
    int64_t df = 0;
    double idf = 0;
  };
  std::vector<query_word> qwords;
  for (const auto& w : words) {
    auto df = snap.count(posting_key(w, ""));
    if (!df) return df.error();
    if (*df == 0) return result;
    qwords.push_back({w, static_cast<int64_t>(*df), 0.0});
  }
  auto count = read_integer(snap, private_count_key, true);
  if (!count) return count.error();
  const double n = count->has_value() ? static_cast<double>(**count) : 0.0;
  for (auto& w : qwords) w.idf = std::log(1.0 + n / static_cast<double>(w.df));
  // Rarest first: its postings are the candidates, the others are checked
  // per candidate with point reads.
  std::sort(qwords.begin(), qwords.end(), [](const query_word& a, const query_word& b) {
    return a.df != b.df ? a.df < b.df : a.word < b.word;
  });

  // `in`: only documents whose id starts with it (a user's area in auth mode).
  auto in_param = params.find("in");
  const std::string in = in_param == params.end() ? "" : in_param->second;
  std::vector<hit> hits;
  const std::string prefix = posting_key(qwords.front().word, "");
  std::string start;
  while (true) {
    auto page = snap.range(prefix, start, search_page_size);
    if (!page) return page.error();
    for (auto& kv : page->items) {
      std::string id = kv.key.substr(prefix.size());
      if (id.compare(0, in.size(), in) != 0) continue;
      auto tf = parse_integer(kv.value);
      if (!tf) continue;
      double score = static_cast<double>(*tf) * qwords.front().idf;
      bool all = true;
      for (size_t i = 1; i < qwords.size() && all; ++i) {
        auto other = read_integer(snap, posting_key(qwords[i].word, id));
        if (!other) return other.error();
        if (!other->has_value()) {
          all = false;
        } else {
          score += static_cast<double>(**other) * qwords[i].idf;
        }
      }
      if (!all) continue;
      hits.push_back({std::move(id), std::string(), std::round(score * 1e6) / 1e6});
    }
    if (!page->next) break;
    start = *page->next;
  }

  std::sort(hits.begin(), hits.end(), [](const hit& a, const hit& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
  if (*limit && hits.size() > *limit) hits.resize(*limit);
  // Titles only for the hits returned.
  for (auto& h : hits) {
    auto title = read_json(snap, private_key(private_title_prefix, h.id), true);
    if (!title) return title.error();
    if (title->has_value() && (*title)->is_string()) h.title = (*title)->get<std::string>();
    result["hits"].push_back({{"id", std::move(h.id)}, {"title", std::move(h.title)},
                              {"score", h.score}});
  }
  return result;
}

void install(derive::runtime& rt, uint32_t search_version) {
  rt.add_view(documents_view());
  rt.add_view(search_view(search_version));
  rt.add_view(stats_view());
  rt.add_validator(std::string(put_type), validate_put);
  rt.add_validator(std::string(delete_type), validate_delete);
}

}  // namespace docsearch
