#include "json_check.hpp"

#include <cstring>

#include "protocol.hpp"

namespace mathpool::detail {
namespace {

// Byte classes for a string's contents.
struct PlainBytes {
  bool at[256] = {};
  constexpr PlainBytes() {
    for (int c = 0x20; c < 0x80; ++c) at[c] = c != '"' && c != '\\';
  }
  constexpr bool operator[](unsigned char c) const { return at[c]; }
};
constexpr PlainBytes kPlain;

// A record nests its values one level down, and a binary value is written as
// {"bytes": [...]}: two more. The values themselves may nest kMaxValueDepth.
constexpr int kMaxDepth = kMaxValueDepth + 3;

// Top-level members a record has after its key (record_line.cpp writes them,
// without escapes): any other, a second "task" say, is refused.
// Found by length and first letter: comparing with each name as a C string
// cost a strlen per name per member, the most of a record's check under MPI.
bool is_tail_member(std::string_view key) {
  // Each comparison has a constant length, so the compiler inlines it (a
  // comparison of runtime length was a call to memcmp per member: a sixth
  // of an echo record's check).
  const char* k = key.data();
  switch (key.size()) {
    case 4: return std::memcmp(k, "node", 4) == 0;
    case 5: return std::memcmp(k, "error", 5) == 0;
    case 7: return std::memcmp(k, "seconds", 7) == 0;
    case 6:
      switch (k[0]) {
        case 'p': return std::memcmp(k, "params", 6) == 0;
        case 'l': return std::memcmp(k, "labels", 6) == 0;
        case 's': return std::memcmp(k, "status", 6) == 0;
        case 'r': return std::memcmp(k, "result", 6) == 0;
        case 'w': return std::memcmp(k, "worker", 6) == 0;
        default: return false;
      }
    default: return false;
  }
}

using Byte = unsigned char;

// Each step takes the position of what it checks and returns the position
// after it, or nullptr when the bytes are not what JSON allows there. The
// position stays in a register (a member pointer was stored and reloaded
// around every call: half the check's time).
class Checker {
 public:
  explicit Checker(std::string_view s)
      : begin_(reinterpret_cast<const Byte*>(s.data())), end_(begin_ + s.size()) {}

  bool object_only() const {
    const Byte* p = begin_;
    return p < end_ && *p == '{' && (p = value(p, 0)) && p == end_;
  }
  // What follows an object's '{' and some members with their ',': more members, then '}'.
  bool members_only(bool record_tail) const {
    const Byte* p = members<'}'>(begin_, 0, record_tail);
    return p && p == end_;
  }

 private:
  const Byte* value(const Byte* p, int depth) const {
    if (p == end_) return nullptr;
    switch (*p) {
      case '{': return container<'}'>(p, depth);
      case '[': return container<']'>(p, depth);
      case '"': return string(p);
      case 't': return word(p, "true", 4);
      case 'f': return word(p, "false", 5);
      case 'n': return word(p, "null", 4);
      default: return number(p);
    }
  }

  // An object (close '}') or an array (close ']'), at its opening byte.
  template <Byte close>
  const Byte* container(const Byte* p, int depth) const {
    if (depth >= kMaxDepth) return nullptr;
    ++p;
    if (p < end_ && *p == close) return p + 1;
    return members<close>(p, depth, false);
  }

  // Members (close '}') or elements (close ']') up to and with the close.
  template <Byte close>
  const Byte* members(const Byte* p, int depth, bool record_tail) const {
    for (;;) {
      if constexpr (close == '}') {
        const Byte* key = p;
        if (p == end_ || *p != '"' || !(p = string(p)) || p == end_ || *p != ':') return nullptr;
        if (record_tail &&
            !is_tail_member(std::string_view(reinterpret_cast<const char*>(key) + 1, std::size_t(p - key) - 2)))
          return nullptr;
        ++p;
      }
      if (!(p = value(p, depth + 1)) || p == end_) return nullptr;
      const Byte c = *p++;
      if (c == close) return p;
      if (c != ',') return nullptr;
    }
  }

  const Byte* word(const Byte* p, const char* w, std::size_t n) const {
    if (std::size_t(end_ - p) < n) return nullptr;
    for (std::size_t i = 0; i < n; ++i)
      if (p[i] != Byte(w[i])) return nullptr;
    return p + n;
  }

  const Byte* digits(const Byte* p) const {
    const Byte* start = p;
    while (p < end_ && Byte(*p - '0') <= 9) ++p;
    return p != start ? p : nullptr;
  }

  const Byte* number(const Byte* p) const {
    if (p < end_ && *p == '-') ++p;
    if (p < end_ && *p == '0') ++p;
    else if (!(p = digits(p))) return nullptr;
    if (p < end_ && *p == '.' && !(p = digits(p + 1))) return nullptr;
    if (p < end_ && (*p | 0x20) == 'e') {
      ++p;
      if (p < end_ && (*p == '+' || *p == '-')) ++p;
      if (!(p = digits(p))) return nullptr;
    }
    return p;
  }

  // The four hex digits of a \u escape, at p: their value, or -1.
  int escape(const Byte* p) const {
    if (end_ - p < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; ++i) {
      const Byte c = p[i];
      if (!hex(c)) return -1;
      v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
  }

  static bool hex(Byte c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
  static bool continuation(Byte c) { return (c & 0xc0) == 0x80; }

  // A string at its opening quote: escapes as JSON has them, UTF-8 well formed
  // (no overlong forms, no surrogates, nothing past U+10FFFF).
  const Byte* string(const Byte* p) const {
    ++p;
    for (;;) {
      while (p < end_ && kPlain[*p]) ++p;  // most bytes: printable ASCII other than '"' and '\\'
      if (p == end_) return nullptr;
      const Byte c = *p;
      if (c == '"') return p + 1;
      if (c < 0x20) return nullptr;
      if (c == '\\') {
        if (++p == end_) return nullptr;
        const Byte e = *p++;
        if (e == 'u') {
          // A surrogate escape comes as a high one then a low one, as UTF-16 has them.
          const int unit = escape(p);
          if (unit < 0 || (unit >= 0xdc00 && unit <= 0xdfff)) return nullptr;
          p += 4;
          if (unit >= 0xd800 && unit <= 0xdbff) {
            if (end_ - p < 2 || p[0] != '\\' || p[1] != 'u') return nullptr;
            const int low = escape(p + 2);
            if (low < 0xdc00 || low > 0xdfff) return nullptr;
            p += 6;
          }
        } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') {
          return nullptr;
        }
        continue;
      }
      int more;
      Byte low = 0x80, high = 0xbf;  // the second byte's range
      if (c >= 0xc2 && c <= 0xdf) more = 1;
      else if (c == 0xe0) more = 2, low = 0xa0;
      else if (c == 0xed) more = 2, high = 0x9f;
      else if (c >= 0xe1 && c <= 0xef) more = 2;
      else if (c == 0xf0) more = 3, low = 0x90;
      else if (c >= 0xf1 && c <= 0xf3) more = 3;
      else if (c == 0xf4) more = 3, high = 0x8f;
      else return nullptr;
      if (end_ - p <= more || p[1] < low || p[1] > high) return nullptr;
      for (int i = 2; i <= more; ++i)
        if (!continuation(p[i])) return nullptr;
      p += more + 1;
    }
  }

  const Byte* begin_;
  const Byte* end_;
};

}  // namespace

bool is_json_object(std::string_view bytes) noexcept { return Checker(bytes).object_only(); }
bool is_json_members(std::string_view bytes) noexcept { return Checker(bytes).members_only(false); }
bool is_record_tail(std::string_view bytes) noexcept { return Checker(bytes).members_only(true); }

}  // namespace mathpool::detail
