#include "core/json_check.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/json_text.hpp"

namespace derive {
namespace {

using json = nlohmann::json;

// A decimal number as digits * 10^exponent, without leading or trailing
// zeros in `digits`; zero has no digits (and no sign).
struct decimal {
  bool negative = false;
  std::string digits;
  int64_t exponent = 0;

  bool operator==(const decimal& o) const {
    return negative == o.negative && digits == o.digits && exponent == o.exponent;
  }
};

// Exponents beyond this are clamped: no double comes near, so a clamped
// value still compares unequal to every double's.
constexpr int64_t exponent_clamp = int64_t{1} << 40;

// REQUIRES: `s` follows JSON's number grammar.
decimal to_decimal(std::string_view s) {
  decimal d;
  size_t i = 0;
  if (i < s.size() && s[i] == '-') d.negative = true, ++i;
  int64_t fraction_digits = 0;
  bool in_fraction = false;
  for (; i < s.size() && s[i] != 'e' && s[i] != 'E'; ++i) {
    if (s[i] == '.') {
      in_fraction = true;
      continue;
    }
    if (d.digits.empty() && s[i] == '0') {  // a leading zero
      if (in_fraction) ++fraction_digits;
      continue;
    }
    d.digits.push_back(s[i]);
    if (in_fraction) ++fraction_digits;
  }
  int64_t exp = 0;
  bool exp_negative = false;
  if (i < s.size()) {  // 'e' or 'E'
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) exp_negative = s[i++] == '-';
    for (; i < s.size(); ++i) exp = std::min(exp * 10 + (s[i] - '0'), exponent_clamp);
  }
  d.exponent = (exp_negative ? -exp : exp) - fraction_digits;
  while (!d.digits.empty() && d.digits.back() == '0') d.digits.pop_back(), ++d.exponent;
  if (d.digits.empty()) d = decimal{};
  return d;
}

bool is_identifier(std::string_view key) {
  if (key.empty() || (key[0] >= '0' && key[0] <= '9')) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
  });
}

// ".key", or ["key"] for other names (at most 64 bytes of it shown).
void append_member(std::string& path, std::string_view key) {
  if (is_identifier(key) && key.size() <= 64) {
    path += '.';
    path += key;
    return;
  }
  path += '[';
  append_json_string(path, key.substr(0, 64));
  if (key.size() > 64) path.insert(path.size() - 1, "...");
  path += ']';
}

// The SAX pass: tracks the path of the current value and the member names of
// each open object, and records the first issue.
class checker {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  json_check result;

  bool null() { return value(); }
  bool boolean(bool) { return value(); }
  bool number_integer(number_integer_t) { return value(); }
  bool number_unsigned(number_unsigned_t) { return value(); }
  bool number_float(number_float_t v, const string_t& text) {
    value();
    if (result.issue) return true;
    if (text.find_first_of(".eE") == std::string::npos) {
      return flag(path(), "is an integer beyond 64 bits, which the server cannot keep exactly; "
                          "send it as a string");
    }
    std::string stored = json(v).dump();
    if (!same_decimal_value(text, stored)) {
      return flag(path(), "is the number " + shown(text) + ", which a 64-bit double cannot " +
                              "hold exactly (it would be stored as " + stored +
                              "); send fewer digits or a string");
    }
    return true;
  }
  bool string(string_t&) { return value(); }
  bool binary(binary_t&) { return value(); }

  bool start_object(size_t) {
    value();
    if (frames_.empty()) result.root_is_array = false;
    frames_.push_back({false, 0, {}, keys_.size()});
    return true;
  }
  bool key(string_t& k) {
    frames_.back().key = k;
    keys_.push_back(k);
    return true;
  }
  bool end_object() {
    auto& f = frames_.back();
    auto first = keys_.begin() + static_cast<std::ptrdiff_t>(f.first_key);
    if (!result.issue) {
      std::sort(first, keys_.end());
      if (auto dup = std::adjacent_find(first, keys_.end()); dup != keys_.end()) {
        frames_.back().key = *dup;
        flag(path(), "appears twice in its object; duplicate member names are refused "
                     "(a parser would keep only one)");
      }
    }
    keys_.erase(first, keys_.end());
    frames_.pop_back();
    return true;
  }
  bool start_array(size_t) {
    value();
    if (frames_.empty()) result.root_is_array = true;
    frames_.push_back({true, 0, {}, 0});
    return true;
  }
  bool end_array() {
    frames_.pop_back();
    return true;
  }
  bool parse_error(size_t position, const std::string&, const nlohmann::detail::exception& e) {
    result.well_formed = false;
    std::string_view what = e.what();  // "[json.exception.parse_error.101] parse error at ..."
    if (auto end = what.find("] "); what.rfind("[json.exception", 0) == 0 && end != what.npos)
      what.remove_prefix(end + 2);
    result.syntax_error = std::string(what);
    (void)position;
    return false;
  }

 private:
  struct frame {
    bool array = false;
    size_t next_index = 0;  // arrays: the index of the next element
    std::string key;        // objects: the current member's name
    size_t first_key = 0;   // objects: where its names start in keys_
  };

  // A value starts: in an array, it is the next element.
  bool value() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().next_index;
    return true;
  }

  std::string path() const {
    std::string p;
    for (const auto& f : frames_) {
      if (f.array) {
        p += '[';
        append_uint(p, f.next_index - 1);
        p += ']';
      } else {
        append_member(p, f.key);
      }
    }
    return p;
  }

  static std::string shown(const std::string& text) {
    return text.size() <= 40 ? text : text.substr(0, 40) + "...";
  }

  bool flag(std::string where, std::string what) {
    if (!result.issue) result.issue = json_issue{std::move(where), std::move(what)};
    return true;
  }

  std::vector<frame> frames_;
  std::vector<std::string> keys_;
};

}  // namespace

std::string json_issue::describe(std::string_view root) const {
  std::string out(root);
  out += root.empty() && !path.empty() && path[0] == '.' ? path.substr(1) : path;
  if (out.empty()) out = "the value";
  out += ' ';
  out += what;
  return out;
}

bool same_decimal_value(std::string_view sent, std::string_view stored) {
  return to_decimal(sent) == to_decimal(stored);
}

json_check check_json(std::string_view text) {
  checker c;
  c.result.well_formed = true;
  json::sax_parse(text.begin(), text.end(), &c);
  if (!c.result.well_formed) c.result.issue.reset();
  return std::move(c.result);
}

}  // namespace derive
