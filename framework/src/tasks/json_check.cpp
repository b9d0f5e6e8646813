#include "json_check.hpp"

#include "protocol.hpp"

namespace mathpool::detail {
namespace {

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
  std::string_view known;
  switch (key.size()) {
    case 4: known = "node"; break;
    case 5: known = "error"; break;
    case 7: known = "seconds"; break;
    case 6:
      switch (key[0]) {
        case 'p': known = "params"; break;
        case 'l': known = "labels"; break;
        case 's': known = "status"; break;
        case 'r': known = "result"; break;
        case 'w': known = "worker"; break;
        default: return false;
      }
      break;
    default: return false;
  }
  return key == known;
}

class Checker {
 public:
  explicit Checker(std::string_view s) : p_(reinterpret_cast<const unsigned char*>(s.data())), end_(p_ + s.size()) {}

  bool object_only() { return p_ < end_ && *p_ == '{' && value(0) && p_ == end_; }
  // What follows an object's '{' and some members with their ',': more members, then '}'.
  bool members_only(bool record_tail) {
    record_tail_ = record_tail;
    return members(0, '}') && p_ == end_;
  }

 private:
  bool value(int depth) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '{': return container(depth, '}');
      case '[': return container(depth, ']');
      case '"': return string();
      case 't': return word("true");
      case 'f': return word("false");
      case 'n': return word("null");
      default: return number();
    }
  }

  // An object (close '}') or an array (close ']'), at p_'s opening byte.
  bool container(int depth, unsigned char close) {
    if (depth >= kMaxDepth) return false;
    ++p_;
    if (p_ < end_ && *p_ == close) return ++p_, true;
    return members(depth, close);
  }

  // Members (close '}') or elements (close ']') up to and with the close.
  bool members(int depth, unsigned char close) {
    for (;;) {
      if (close == '}') {
        const unsigned char* key = p_;
        if (p_ == end_ || *p_ != '"' || !string() || p_ == end_ || *p_++ != ':') return false;
        if (record_tail_ && depth == 0 &&
            !is_tail_member(std::string_view(reinterpret_cast<const char*>(key) + 1, std::size_t(p_ - key) - 3)))
          return false;
      }
      if (!value(depth + 1) || p_ == end_) return false;
      const unsigned char c = *p_++;
      if (c == close) return true;
      if (c != ',') return false;
    }
  }

  bool word(const char* w) {
    for (; *w; ++w, ++p_)
      if (p_ == end_ || *p_ != static_cast<unsigned char>(*w)) return false;
    return true;
  }

  bool digits() {
    const unsigned char* start = p_;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    return p_ != start;
  }

  bool number() {
    if (p_ < end_ && *p_ == '-') ++p_;
    if (p_ < end_ && *p_ == '0') ++p_;
    else if (!digits()) return false;
    if (p_ < end_ && *p_ == '.' && (++p_, !digits())) return false;
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digits()) return false;
    }
    return true;
  }

  // The four hex digits of a \u escape, after its 'u': their value, or -1.
  int escape() {
    int v = 0;
    for (int i = 0; i < 4; ++i, ++p_) {
      if (p_ == end_ || !hex(*p_)) return -1;
      const unsigned char c = *p_;
      v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
  }

  static bool hex(unsigned char c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
  static bool continuation(unsigned char c) { return (c & 0xc0) == 0x80; }

  // A string at its opening quote: escapes as JSON has them, UTF-8 well formed
  // (no overlong forms, no surrogates, nothing past U+10FFFF).
  bool string() {
    ++p_;
    while (p_ < end_) {
      if (kPlain[*p_]) {  // most bytes: printable ASCII other than '"' and '\\'
        ++p_;
        continue;
      }
      const unsigned char c = *p_;
      if (c == '"') return ++p_, true;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (++p_ == end_) return false;
        const unsigned char e = *p_++;
        if (e == 'u') {
          // A surrogate escape comes as a high one then a low one, as UTF-16 has them.
          const int unit = escape();
          if (unit < 0 || (unit >= 0xdc00 && unit <= 0xdfff)) return false;
          if (unit >= 0xd800 && unit <= 0xdbff) {
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
            p_ += 2;
            const int low = escape();
            if (low < 0xdc00 || low > 0xdfff) return false;
          }
        } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't') {
          return false;
        }
        continue;
      }
      if (c < 0x80) {
        ++p_;
        continue;
      }
      int more;
      unsigned char low = 0x80, high = 0xbf;  // the second byte's range
      if (c >= 0xc2 && c <= 0xdf) more = 1;
      else if (c == 0xe0) more = 2, low = 0xa0;
      else if (c == 0xed) more = 2, high = 0x9f;
      else if (c >= 0xe1 && c <= 0xef) more = 2;
      else if (c == 0xf0) more = 3, low = 0x90;
      else if (c >= 0xf1 && c <= 0xf3) more = 3;
      else if (c == 0xf4) more = 3, high = 0x8f;
      else return false;
      if (end_ - p_ <= more || p_[1] < low || p_[1] > high) return false;
      for (int i = 2; i <= more; ++i)
        if (!continuation(p_[i])) return false;
      p_ += more + 1;
    }
    return false;
  }

  const unsigned char* p_;
  const unsigned char* end_;
  bool record_tail_ = false;
};

}  // namespace

bool is_json_object(std::string_view bytes) noexcept { return Checker(bytes).object_only(); }
bool is_json_members(std::string_view bytes) noexcept { return Checker(bytes).members_only(false); }
bool is_record_tail(std::string_view bytes) noexcept { return Checker(bytes).members_only(true); }

}  // namespace mathpool::detail
