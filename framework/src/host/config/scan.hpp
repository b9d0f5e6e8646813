// scan.hpp: small hand-written scanners for the number syntaxes of configs.
//
// They replace std::regex, whose matcher recurses once per character and so
// overflows the stack on a long scalar. Each runs in one pass, without
// recursion or allocation.
#pragma once

#include <cctype>
#include <string_view>

namespace mathpool::detail::scan {

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_hex_digit(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// Skips the digits at `pos`; returns how many there were.
inline std::size_t digits(std::string_view s, std::size_t& pos) {
  const std::size_t start = pos;
  while (pos < s.size() && is_digit(s[pos])) ++pos;
  return pos - start;
}

// Skips one '+' or '-' at `pos`, if there is one.
inline void sign(std::string_view s, std::size_t& pos) {
  if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) ++pos;
}

// [-+]?[0-9]+
inline bool is_integer(std::string_view s) {
  std::size_t pos = 0;
  sign(s, pos);
  return digits(s, pos) > 0 && pos == s.size();
}

// 0x[0-9a-fA-F]+
inline bool is_hex(std::string_view s) {
  if (s.size() < 3 || s[0] != '0' || s[1] != 'x') return false;
  for (std::size_t i = 2; i < s.size(); ++i)
    if (!is_hex_digit(s[i])) return false;
  return true;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
inline bool is_float(std::string_view s) {
  std::size_t pos = 0;
  sign(s, pos);
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    if (digits(s, pos) == 0) return false;
  } else {
    if (digits(s, pos) == 0) return false;
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      digits(s, pos);
    }
  }
  if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
    ++pos;
    sign(s, pos);
    if (digits(s, pos) == 0) return false;
  }
  return pos == s.size();
}

// A number with a unit, as in durations and memory sizes: the parts of
// [0-9]+(\.[0-9]+)?\s*UNIT? where UNIT is returned empty when absent.
struct Amount {
  std::string_view number;
  std::string_view unit;
};

// Splits `s` into number and unit; false when the number part does not match
// [0-9]+(\.[0-9]+)? (the unit is checked by the caller).
inline bool amount(std::string_view s, Amount& out) {
  std::size_t pos = 0;
  if (digits(s, pos) == 0) return false;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    if (digits(s, pos) == 0) return false;
  }
  out.number = s.substr(0, pos);
  while (pos < s.size() && std::isspace(static_cast<unsigned char>(s[pos]))) ++pos;
  out.unit = s.substr(pos);
  return true;
}

}  // namespace mathpool::detail::scan
