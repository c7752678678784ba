#pragma once
// docsearch's words: how document text and queries are split and lower-cased.
//
// The exact rule (documents and queries use the same function):
//   1. The text is decoded as UTF-8. A byte that does not start a valid,
//      shortest-form sequence of a Unicode scalar value is a separator.
//   2. A word is a maximal run of word characters: code points of Unicode
//      General Category L (Lu, Ll, Lt, Lm, Lo) or Nd (decimal digits), in any
//      script. Everything else separates words: spaces, punctuation, symbols,
//      the underscore, combining marks (so a decomposed "é" = e + U+0301 splits),
//      other numbers (², ½). Scripts without spaces (Chinese, Japanese) give one
//      word per run of letters.
//   3. Each code point is lower-cased by its simple Unicode lower-case mapping
//      (one code point to one; U+0130 "İ" becomes "i"), except that a capital
//      sigma "Σ" that ends a word of two or more code points becomes the final
//      sigma "ς" (as JavaScript's and Python's lower() do at the end of a
//      word: "ΟΔΟΣ" -> "οδος"). No other normalization: "ß" stays, "ﬁ" is its
//      own letter, "σ" and "ς" are different letters.
//   4. The result is re-encoded as UTF-8.
// The tables come from Unicode 17.0 (tools/gen_unicode_tables.mjs).
//
// Thread-safe, no allocation beyond the returned strings (word_reader: its
// one buffer).

#include <string>
#include <string_view>
#include <vector>

namespace docsearch {

// Words of `text`, lower-cased, in order of appearance, repeats included.
std::vector<std::string> tokenize(std::string_view text);

// The words of tokenize(text), one at a time, in one reused buffer (indexing
// a document allocates nothing per word). Views `text`: it must outlive the
// reader.
class word_reader {
 public:
  explicit word_reader(std::string_view text);
  // The next word, valid until the next call; false at the end of the text.
  bool next(std::string_view& word);

 private:
  const unsigned char* p_;
  const unsigned char* end_;
  std::string word_;
};

// True when `cp` is a word character (rule 2).
bool is_word_char(char32_t cp);

// The simple lower-case mapping of `cp` (rule 3, without the final sigma).
char32_t to_lower(char32_t cp);

}  // namespace docsearch
