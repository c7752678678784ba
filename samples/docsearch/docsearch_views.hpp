#pragma once
// The docsearch sample's events, validators and views (protocol.md, appendix).
//
// Events
//   doc.put     key: the document id; data: {"title": string, "text": string}
//               (other members of data are allowed and ignored)
//   doc.delete  key: the document id; data: ignored
// Both need a non-empty key. Validators refuse anything else at append time
// (invalid_event naming the field); every other event type is accepted and
// ignored by the views.
//
// Views
//   documents  (from the log)  id -> {"title", "text", "updated": <offset of its last put>}
//   search     (from documents' changes) "<word>/<id>" -> the word's weighted
//              frequency in the document (a positive integer: each title
//              occurrence counts 2, each text occurrence 1), one key per word
//              of each live document, and nothing else. Words never contain
//              '/', so the prefix "<word>/" selects exactly that word's
//              documents. A document's change writes only the keys whose
//              value changed: its cost is proportional to the document.
//              Query "search": ?q=<words>[&limit=N].
//   stats      (from the log)  "totals" -> {"documents", "puts", "deletes"},
//              and nothing else; "totals" exists from the first doc.put.
//
// Private state (view_txn::put_private: committed with the view, never
// published). A derived view receives only the new value of an upstream key,
// so to remove the words a document no longer contains, `search` keeps per
// document what it indexed, and the document frequencies the query ranks
// with; `stats` keeps which documents are live, so that a delete of a missing
// document changes nothing:
//   search: "doc:<id>"   -> "<word> <word> ..." (the words the document
//                           indexed, in byte order; their tf is in the
//                           postings. Stores written before 2026-12-01 21:30
//                           hold {<word>: <tf>, ...}: read as its words)
//           "title:<id>" -> the document's title (the query's hits show it)
//           "count"      -> number of indexed (live) documents (absent: 0)
//           (Stores written before 2026-12-02 also hold "df:<word>" counters:
//           no longer read nor written; df is counted from the postings.)
//   stats:  "doc:<id>"   -> true while the document is live
//
// Ranking (query "search"): the query is tokenized exactly like documents
// (duplicates ignored). A document is a hit when it contains every query word.
//   score(d) = sum over query words w of tf(w, d) * ln(1 + N / df(w))
// where tf(w, d) = 2 * (occurrences of w in the title) + (occurrences in the
// text), N = number of live documents, df(w) = number of documents containing
// w. Hits are ordered by score descending, then id ascending; the score is
// rounded to 6 decimals. An empty query (or one with no words) has no hits.
// Response: {"offset": N, "hits": [{"id", "title", "score"}, ...]} with all
// hits, or the first `limit` (1..10000) when given.
//
// Cost: the query counts the postings of each of its words (df: a walk over
// the keys "<word>/", no value decoded), range-reads the postings
// "<rarest word>/" page by page, checks each candidate's other words with
// point reads "<word>/<id>" (rarest first), and reads the titles of the hits
// it returns. It never decodes another word's postings.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>
#include <string_view>

#include <derive/event.hpp>
#include <derive/runtime.hpp>
#include <derive/status.hpp>
#include <derive/view.hpp>

namespace docsearch {

inline constexpr std::string_view put_type = "doc.put";
inline constexpr std::string_view delete_type = "doc.delete";

inline constexpr std::string_view documents_view_name = "documents";
inline constexpr std::string_view search_view_name = "search";
inline constexpr std::string_view stats_view_name = "stats";

inline constexpr std::string_view totals_key = "totals";
// Private keys (see above).
inline constexpr std::string_view private_doc_prefix = "doc:";
inline constexpr std::string_view private_title_prefix = "title:";
inline constexpr std::string_view private_count_key = "count";

// The search view's version (2: "<word>/<id>" keys) and its key separator.
inline constexpr uint32_t search_view_version = 2;
// Version 3 (docsearch --search-version 3): a title word counts this many times.
inline constexpr uint32_t search_boost_version = 3;
inline constexpr int64_t title_boost_weight = 5;
inline constexpr char posting_separator = '/';
// Postings read per range page by the query.
inline constexpr size_t search_page_size = 1024;

// The search view's key of `word` in document `id`: "<word>/<id>".
std::string posting_key(std::string_view word, std::string_view id);

// The fields of a doc.put that views use.
struct document {
  std::string title;
  std::string text;
};

// The document of a doc.put's data (JSON text), or nullopt when it is not an
// object with string members "title" and "text".
std::optional<document> parse_document(std::string_view data);
std::optional<document> document_from_json(const derive::json& data);
// parse_document(data).has_value(), without building the document (a walk of
// the text that allocates nothing per value).
bool is_document(std::string_view data);

// Validators for runtime::add_validator. Errors: invalid_event, the message
// naming the field ("key", "data", "data.title", "data.text").
derive::status validate_put(const derive::event_input& e);
derive::status validate_delete(const derive::event_input& e);

// Each word of one document with its tf (see Ranking above), in byte order.
using word_counts = std::vector<std::pair<std::string, int64_t>>;
word_counts term_frequencies(const document& doc, int64_t title_weight = 2);

// The words of a search "doc:<id>" private record: its words separated by ' ',
// or the keys of an older store's {<word>: <tf>} object; none for anything else.
std::set<std::string> indexed_words(const derive::json& record);

// The three views, and the "search" query of the search view.
derive::view_def documents_view();
derive::view_def search_view(uint32_t version = search_view_version);
derive::view_def stats_view();
derive::result<derive::json> run_search(const derive::view_snapshot& snapshot,
                                        const derive::query_params& params);

// Adds the three views and both validators to `rt` (before rt.start()).
// Declares the views (the search view at `search_version`: 2, or 3 for the
// title boost) and the validators.
void install(derive::runtime& rt, uint32_t search_version = search_view_version);

}  // namespace docsearch
