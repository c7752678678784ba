#include "docsearch/tokenizer.hpp"

#include <algorithm>
#include <cstdint>
#include <iterator>

namespace docsearch {
namespace {

struct code_point_range {
  char32_t first;
  char32_t last;
};

struct lower_run {
  char32_t first;
  char32_t last;
  int32_t delta;
  uint32_t stride;
};

#include "docsearch/unicode_tables.inc"

constexpr char32_t invalid = 0xFFFFFFFF;
constexpr char32_t capital_sigma = 0x03A3;
constexpr char32_t final_sigma = 0x03C2;

// Decodes one UTF-8 sequence at `p` (p < end). Returns `invalid` and consumes
// one byte when the bytes are not a valid, shortest-form scalar value.
char32_t decode(const unsigned char*& p, const unsigned char* end) {
  unsigned char b = *p;
  if (b < 0x80) {
    ++p;
    return b;
  }
  int n = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((b & 0xE0) == 0xC0) {
    n = 1, cp = b & 0x1F, min = 0x80;
  } else if ((b & 0xF0) == 0xE0) {
    n = 2, cp = b & 0x0F, min = 0x800;
  } else if ((b & 0xF8) == 0xF0) {
    n = 3, cp = b & 0x07, min = 0x10000;
  } else {
    ++p;
    return invalid;
  }
  if (end - p <= n) {
    ++p;
    return invalid;
  }
  for (int i = 1; i <= n; ++i) {
    if ((p[i] & 0xC0) != 0x80) {
      ++p;
      return invalid;
    }
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++p;
    return invalid;
  }
  p += n + 1;
  return cp;
}

void encode(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

bool is_word_char(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  }
  auto it = std::upper_bound(std::begin(word_ranges), std::end(word_ranges), cp,
                             [](char32_t c, const code_point_range& r) { return c < r.first; });
  if (it == std::begin(word_ranges)) return false;
  return cp <= std::prev(it)->last;
}

char32_t to_lower(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  auto it = std::upper_bound(std::begin(lower_runs), std::end(lower_runs), cp,
                             [](char32_t c, const lower_run& r) { return c < r.first; });
  if (it == std::begin(lower_runs)) return cp;
  const lower_run& r = *std::prev(it);
  if (cp > r.last || (cp - r.first) % r.stride != 0) return cp;
  return static_cast<char32_t>(static_cast<int64_t>(cp) + r.delta);
}

word_reader::word_reader(std::string_view text)
    : p_(reinterpret_cast<const unsigned char*>(text.data())), end_(p_ + text.size()) {}

bool word_reader::next(std::string_view& word) {
  word_.clear();
  size_t length = 0;           // code points in the word
  bool ends_in_sigma = false;  // its last code point is a capital sigma
  while (p_ < end_) {
    const unsigned char b = *p_;
    char32_t cp;
    if (b < 0x80) {  // ASCII: most text, one byte each
      ++p_;
      cp = b;
    } else {
      cp = decode(p_, end_);
    }
    if (cp == invalid || !is_word_char(cp)) {
      if (length > 0) break;
      continue;
    }
    ++length;
    ends_in_sigma = cp == capital_sigma;
    if (cp < 0x80)
      word_ += static_cast<char>((cp >= 'A' && cp <= 'Z') ? cp + 32 : cp);
    else
      encode(to_lower(cp), word_);
  }
  if (length == 0) return false;
  if (ends_in_sigma && length > 1) {  // rule 3: the final sigma
    word_.resize(word_.size() - 2);   // the lower-case sigma's two bytes
    encode(final_sigma, word_);
  }
  word = word_;
  return true;
}

std::vector<std::string> tokenize(std::string_view text) {
  std::vector<std::string> words;
  word_reader reader(text);
  for (std::string_view w; reader.next(w);) words.emplace_back(w);
  return words;
}

}  // namespace docsearch
