// docsearch's word rule (samples/docsearch/tokenizer.hpp).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "samples/docsearch/tokenizer.hpp"

namespace {

using words = std::vector<std::string>;
using docsearch::tokenize;

TEST(docsearch_tokenizer, splits_ascii_on_everything_but_letters_and_digits) {
  EXPECT_EQ(tokenize("Hello, world! 42 times_two a-b c.d"),
            (words{"hello", "world", "42", "times", "two", "a", "b", "c", "d"}));
}

TEST(docsearch_tokenizer, keeps_repeats_in_order) {
  EXPECT_EQ(tokenize("to be or not to be"), (words{"to", "be", "or", "not", "to", "be"}));
}

TEST(docsearch_tokenizer, empty_and_separator_only_text_has_no_words) {
  EXPECT_EQ(tokenize(""), words{});
  EXPECT_EQ(tokenize("  ,.;!? \t\n -- "), words{});
}

TEST(docsearch_tokenizer, lower_cases_latin_letters_with_diacritics) {
  EXPECT_EQ(tokenize("Café NAÏVE Ærø Œuvre Łódź"),
            (words{"café", "naïve", "ærø", "œuvre", "łódź"}));
}

TEST(docsearch_tokenizer, lower_cases_greek_with_final_sigma) {
  EXPECT_EQ(tokenize("ΟΔΟΣ Σοφία ΣΣ"), (words{"οδος", "σοφία", "σς"}));
}

TEST(docsearch_tokenizer, lower_cases_cyrillic_and_armenian) {
  EXPECT_EQ(tokenize("Привет, МИР! Ёлка ՀԱՅԵՐԵՆ"),
            (words{"привет", "мир", "ёлка", "հայերեն"}));
}

TEST(docsearch_tokenizer, keeps_scripts_without_case) {
  EXPECT_EQ(tokenize("日本語のテキスト 한국어 עברית العربية"),
            (words{"日本語のテキスト", "한국어", "עברית", "العربية"}));
}

TEST(docsearch_tokenizer, digits_of_other_scripts_are_word_characters) {
  EXPECT_EQ(tokenize("٣٤٥ ४२ １２"), (words{"٣٤٥", "४२", "１２"}));
}

TEST(docsearch_tokenizer, fullwidth_latin_is_lower_cased) {
  EXPECT_EQ(tokenize("ＡＢＣ"), (words{"ａｂｃ"}));
}

TEST(docsearch_tokenizer, dotted_capital_i_becomes_plain_i) {
  EXPECT_EQ(tokenize("İSTANBUL"), (words{"istanbul"}));
}

TEST(docsearch_tokenizer, sharp_s_is_not_folded) {
  EXPECT_EQ(tokenize("Straße STRASSE"), (words{"straße", "strasse"}));
}

TEST(docsearch_tokenizer, symbols_marks_and_emoji_separate_words) {
  EXPECT_EQ(tokenize("a×b÷c"), (words{"a", "b", "c"}));
  EXPECT_EQ(tokenize("cafe\xCC\x81s"), (words{"cafe", "s"}));  // e + U+0301
  EXPECT_EQ(tokenize("\xF0\x9F\x98\x80hi\xE2\x82\xAC" "5"), (words{"hi", "5"}));
  EXPECT_EQ(tokenize("x² ½"), (words{"x"}));
}

TEST(docsearch_tokenizer, invalid_utf8_bytes_separate_words) {
  EXPECT_EQ(tokenize("ab\xFF" "cd"), (words{"ab", "cd"}));
  EXPECT_EQ(tokenize("ab\xC0\xAF" "cd"), (words{"ab", "cd"}));        // overlong "/"
  EXPECT_EQ(tokenize("ab\xED\xA0\x80" "cd"), (words{"ab", "cd"}));    // a surrogate
  EXPECT_EQ(tokenize("ab\xC3"), (words{"ab"}));                        // truncated
}

TEST(docsearch_tokenizer, classifies_code_points_by_category) {
  EXPECT_TRUE(docsearch::is_word_char(U'é'));
  EXPECT_TRUE(docsearch::is_word_char(U'ж'));
  EXPECT_TRUE(docsearch::is_word_char(U'中'));
  EXPECT_TRUE(docsearch::is_word_char(0x20000));  // CJK Extension B
  EXPECT_FALSE(docsearch::is_word_char(U'_'));
  EXPECT_FALSE(docsearch::is_word_char(U'×'));
  EXPECT_FALSE(docsearch::is_word_char(U'#'));
  EXPECT_FALSE(docsearch::is_word_char(0x0301));
}

TEST(docsearch_tokenizer, maps_simple_lower_case) {
  EXPECT_EQ(docsearch::to_lower(U'Ÿ'), U'ÿ');
  EXPECT_EQ(docsearch::to_lower(U'Ā'), U'ā');
  EXPECT_EQ(docsearch::to_lower(U'ā'), U'ā');
  EXPECT_EQ(docsearch::to_lower(U'Ѐ'), U'ѐ');
  EXPECT_EQ(docsearch::to_lower(U'Ω'), U'ω');
  EXPECT_EQ(docsearch::to_lower(U'7'), U'7');
}

}  // namespace
