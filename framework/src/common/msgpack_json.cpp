#include "msgpack_json.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>

#include "protocol.hpp"

namespace mathpool::detail {
namespace {

std::uint64_t read_be(const std::uint8_t* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = v << 8 | p[i];
  return v;
}

[[noreturn]] void malformed(const char* what) {
  throw ProtocolError(fmt::format("malformed MessagePack value ({})", what));
}

// One value's header: its kind and where its contents start.
struct Header {
  enum Kind { nil, boolean, uint, sint, f32, f64, str, bin, ext, array, map } kind;
  std::uint64_t n = 0;  // a length, a count, or the integer's bits
  std::size_t head = 1; // bytes of the header itself
  std::int8_t ext_type = 0;
};

Header read_header(const std::uint8_t* p, std::size_t size) {
  if (size == 0) malformed("truncated");
  const std::uint8_t b = p[0];
  auto need = [&](std::size_t n) {
    if (size < n) malformed("truncated");
  };
  auto sized = [&](Header::Kind kind, int len_bytes, std::size_t extra = 0) {
    need(1 + std::size_t(len_bytes) + extra);
    Header h{kind, read_be(p + 1, len_bytes), 1 + std::size_t(len_bytes) + extra};
    if (extra) h.ext_type = static_cast<std::int8_t>(p[1 + len_bytes]);
    return h;
  };
  if (b <= 0x7f) return {Header::uint, b};
  if (b >= 0xe0) return {Header::sint, std::uint64_t(std::int64_t(std::int8_t(b)))};
  if ((b & 0xf0) == 0x80) return {Header::map, std::uint64_t(b & 0x0f)};
  if ((b & 0xf0) == 0x90) return {Header::array, std::uint64_t(b & 0x0f)};
  if ((b & 0xe0) == 0xa0) return {Header::str, std::uint64_t(b & 0x1f)};
  switch (b) {
    case 0xc0: return {Header::nil};
    case 0xc2: return {Header::boolean, 0};
    case 0xc3: return {Header::boolean, 1};
    case 0xc4: return sized(Header::bin, 1);
    case 0xc5: return sized(Header::bin, 2);
    case 0xc6: return sized(Header::bin, 4);
    case 0xc7: return sized(Header::ext, 1, 1);
    case 0xc8: return sized(Header::ext, 2, 1);
    case 0xc9: return sized(Header::ext, 4, 1);
    case 0xca: need(5); return {Header::f32, read_be(p + 1, 4), 5};
    case 0xcb: need(9); return {Header::f64, read_be(p + 1, 8), 9};
    case 0xcc: need(2); return {Header::uint, read_be(p + 1, 1), 2};
    case 0xcd: need(3); return {Header::uint, read_be(p + 1, 2), 3};
    case 0xce: need(5); return {Header::uint, read_be(p + 1, 4), 5};
    case 0xcf: need(9); return {Header::uint, read_be(p + 1, 8), 9};
    case 0xd0: need(2); return {Header::sint, std::uint64_t(std::int64_t(std::int8_t(p[1]))), 2};
    case 0xd1: need(3); return {Header::sint, std::uint64_t(std::int64_t(std::int16_t(read_be(p + 1, 2)))), 3};
    case 0xd2: need(5); return {Header::sint, std::uint64_t(std::int64_t(std::int32_t(read_be(p + 1, 4)))), 5};
    case 0xd3: need(9); return {Header::sint, read_be(p + 1, 8), 9};
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: {
      need(2);
      Header h{Header::ext, std::uint64_t(1) << (b - 0xd4), 2};
      h.ext_type = static_cast<std::int8_t>(p[1]);
      return h;
    }
    case 0xd9: return sized(Header::str, 1);
    case 0xda: return sized(Header::str, 2);
    case 0xdb: return sized(Header::str, 4);
    case 0xdc: return sized(Header::array, 2);
    case 0xdd: return sized(Header::array, 4);
    case 0xde: return sized(Header::map, 2);
    case 0xdf: return sized(Header::map, 4);
    default: malformed("unused type byte 0xc1");
  }
}

std::size_t check(const std::uint8_t* p, std::size_t size, int depth) {
  const Header h = read_header(p, size);
  std::size_t pos = h.head;
  switch (h.kind) {
    case Header::str:
    case Header::bin:
    case Header::ext:
      if (h.n > size - pos) malformed("truncated");
      return pos + std::size_t(h.n);
    case Header::array:
    case Header::map: {
      if (depth <= 0) throw ProtocolError("MessagePack value nested too deeply");
      const std::uint64_t items = h.kind == Header::map ? 2 * h.n : h.n;
      for (std::uint64_t i = 0; i < items; ++i) {
        if (h.kind == Header::map && i % 2 == 0 && pos < size && read_header(p + pos, size - pos).kind != Header::str)
          malformed("a map key is not a string");
        pos += check(p + pos, size - pos, depth - 1);  // throws when the bytes run out
      }
      return pos;
    }
    default:
      return pos;
  }
}

double as_double(const Header& h) {
  if (h.kind == Header::f64) {
    double d;
    std::memcpy(&d, &h.n, sizeof d);
    return d;
  }
  const auto bits = static_cast<std::uint32_t>(h.n);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

void append_int(std::string& out, std::int64_t v) {
  char buffer[24];
  auto r = std::to_chars(buffer, buffer + sizeof buffer, v);
  out.append(buffer, std::size_t(r.ptr - buffer));  // (pointer, pointer) is a replace(), slower
}

void append_uint(std::string& out, std::uint64_t v) {
  char buffer[24];
  auto r = std::to_chars(buffer, buffer + sizeof buffer, v);
  if (v > std::uint64_t(INT64_MAX)) {  // beyond signed 64 bits: a decimal string
    out += '"';
    out.append(buffer, std::size_t(r.ptr - buffer));  // (pointer, pointer) is a replace(), slower
    out += '"';
  } else {
    out.append(buffer, std::size_t(r.ptr - buffer));  // (pointer, pointer) is a replace(), slower
  }
}

// As JSON writes binary values (nlohmann's layout), so both paths agree.
void append_binary(std::string& out, const std::uint8_t* p, std::size_t n, bool has_subtype, int subtype) {
  out += "{\"bytes\":[";
  for (std::size_t i = 0; i < n; ++i) {
    if (i) out += ',';
    append_int(out, p[i]);
  }
  out += "],\"subtype\":";
  if (has_subtype) append_int(out, subtype);
  else out += "null";
  out += '}';
}

std::size_t transcode(std::string& out, const std::uint8_t* p, std::size_t size) {
  const Header h = read_header(p, size);
  std::size_t pos = h.head;
  switch (h.kind) {
    case Header::nil: out += "null"; break;
    case Header::boolean: out += h.n ? "true" : "false"; break;
    case Header::uint: append_uint(out, h.n); break;
    case Header::sint: append_int(out, static_cast<std::int64_t>(h.n)); break;
    case Header::f32:
    case Header::f64: append_json_float(out, as_double(h)); break;
    case Header::str:
      append_json_string(out, std::string_view(reinterpret_cast<const char*>(p + pos), std::size_t(h.n)));
      pos += std::size_t(h.n);
      break;
    case Header::ext:
      if (h.ext_type == kBigIntegerSubtype) {  // a big integer (mathpool/value.hpp): its decimal text, as a string
        append_json_string(out, std::string_view(reinterpret_cast<const char*>(p + pos), std::size_t(h.n)));
        pos += std::size_t(h.n);
        break;
      }
      [[fallthrough]];
    case Header::bin:
      append_binary(out, p + pos, std::size_t(h.n), h.kind == Header::ext, h.ext_type);
      pos += std::size_t(h.n);
      break;
    case Header::array:
      out += '[';
      for (std::uint64_t i = 0; i < h.n; ++i) {
        if (i) out += ',';
        pos += transcode(out, p + pos, size - pos);
      }
      out += ']';
      break;
    case Header::map:
      out += '{';
      for (std::uint64_t i = 0; i < h.n; ++i) {
        if (i) out += ',';
        pos += transcode(out, p + pos, size - pos);
        out += ':';
        pos += transcode(out, p + pos, size - pos);
      }
      out += '}';
      break;
  }
  return pos;
}

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not valid.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t n;
  std::uint32_t cp;
  if (b0 < 0xc2) return 0;
  if (b0 < 0xe0) n = 2, cp = b0 & 0x1f;
  else if (b0 < 0xf0) n = 3, cp = b0 & 0x0f;
  else if (b0 < 0xf5) n = 4, cp = b0 & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (b & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

}  // namespace

std::size_t msgpack_check(const std::uint8_t* data, std::size_t size, int max_depth) {
  return check(data, size, max_depth);
}

namespace {

// Decodes one value check() passed, as nlohmann's from_msgpack does (a
// MessagePack uint and a positive fixint are number_unsigned, the int types
// number_integer whatever their sign; an ext is a binary with its type as
// subtype; a key given twice keeps its first place and its last value), at a
// fraction of its cost: its SAX parser built a std::string from a C string
// for every value (a worker's parameters, 1M echo tasks: 15% of its time).
std::size_t decode(const std::uint8_t* p, std::size_t size, Value& out) {
  const Header h = read_header(p, size);
  std::size_t pos = h.head;
  auto bytes = [&] { return std::vector<std::uint8_t>(p + pos, p + pos + h.n); };
  switch (h.kind) {
    case Header::nil: out = nullptr; break;
    case Header::boolean: out = h.n != 0; break;
    case Header::uint: out = std::uint64_t(h.n); break;
    case Header::sint: out = static_cast<std::int64_t>(h.n); break;
    case Header::f32:
    case Header::f64: out = as_double(h); break;
    case Header::str:
      out = std::string(reinterpret_cast<const char*>(p + pos), std::size_t(h.n));
      pos += std::size_t(h.n);
      break;
    case Header::bin:
      out = Value::binary(bytes());
      pos += std::size_t(h.n);
      break;
    case Header::ext:
      out = Value::binary(bytes(), static_cast<std::uint8_t>(h.ext_type));
      pos += std::size_t(h.n);
      break;
    case Header::array: {
      out = Value::array();
      auto& items = out.get_ref<Value::array_t&>();
      items.reserve(std::size_t(h.n));
      for (std::uint64_t i = 0; i < h.n; ++i) pos += decode(p + pos, size - pos, items.emplace_back());
      break;
    }
    case Header::map: {
      out = Value::object();
      auto& members = out.get_ref<Value::object_t&>();
      // Room for the members said (up to a bound: keys given twice make fewer).
      members.reserve(std::min<std::size_t>(std::size_t(h.n), 1024));
      // A key given twice keeps its first place: found by a scan in a small
      // map, through an index of the input's own key bytes in a large one
      // (nlohmann's scan made a map of n keys cost n^2/2 comparisons).
      constexpr std::uint64_t kScanned = 32;
      std::unordered_map<std::string_view, std::size_t> index;
      for (std::uint64_t i = 0; i < h.n; ++i) {
        const Header key = read_header(p + pos, size - pos);  // a string: check() saw to it
        const std::string_view name(reinterpret_cast<const char*>(p + pos + key.head), std::size_t(key.n));
        pos += key.head + std::size_t(key.n);
        std::size_t at = members.size();
        if (h.n <= kScanned) {
          for (std::size_t k = 0; k < members.size() && at == members.size(); ++k)
            if (members.begin()[std::ptrdiff_t(k)].first == name) at = k;
        } else if (const auto [known, added] = index.try_emplace(name, members.size()); !added) {
          at = known->second;
        }
        if (at == members.size()) members.emplace_back(std::string(name), nullptr);
        pos += decode(p + pos, size - pos, members.begin()[std::ptrdiff_t(at)].second);
      }
      break;
    }
  }
  return pos;
}

}  // namespace

Value msgpack_to_value(std::string_view bytes) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  if (msgpack_check(p, bytes.size(), kMaxValueDepth) != bytes.size()) malformed("trailing bytes");
  Value value;
  decode(p, bytes.size(), value);
  return value;
}

void append_msgpack(Bytes& out, const Value& value) { Value::to_msgpack(value, out); }

void append_msgpack_json(std::string& out, std::string_view msgpack) {
  transcode(out, reinterpret_cast<const std::uint8_t*>(msgpack.data()), msgpack.size());
}

namespace {

// Writes `value` as transcode() writes its MessagePack (append_msgpack):
// nlohmann writes a float that a float32 holds exactly as a float32, which
// reads back as the same double; a binary with a subtype as an ext of that
// (int8) type. False for a value with a discarded part, which only the
// MessagePack path writes as it always did.
bool write_json(std::string& out, const Value& value) {
  switch (value.type()) {
    case Value::value_t::null: out += "null"; return true;
    case Value::value_t::boolean: out += value.get<bool>() ? "true" : "false"; return true;
    case Value::value_t::number_integer: append_int(out, value.get<std::int64_t>()); return true;
    case Value::value_t::number_unsigned: append_uint(out, value.get<std::uint64_t>()); return true;
    case Value::value_t::number_float: append_json_float(out, value.get<double>()); return true;
    case Value::value_t::string: append_json_string(out, value.get_ref<const std::string&>()); return true;
    case Value::value_t::binary: {
      const auto& binary = value.get_binary();
      const auto type = static_cast<std::int8_t>(binary.subtype());
      if (binary.has_subtype() && type == kBigIntegerSubtype)
        append_json_string(out, std::string_view(reinterpret_cast<const char*>(binary.data()), binary.size()));
      else
        append_binary(out, binary.data(), binary.size(), binary.has_subtype(), type);
      return true;
    }
    case Value::value_t::array: {
      out += '[';
      bool first = true;
      for (const Value& item : value.get_ref<const Value::array_t&>()) {
        if (!first) out += ',';
        first = false;
        if (!write_json(out, item)) return false;
      }
      out += ']';
      return true;
    }
    case Value::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : value.get_ref<const Value::object_t&>()) {
        if (!first) out += ',';
        first = false;
        append_json_string(out, key);
        out += ':';
        if (!write_json(out, item)) return false;
      }
      out += '}';
      return true;
    }
    default: return false;  // discarded
  }
}

}  // namespace

void append_value_json(std::string& out, const Value& value) {
  const std::size_t before = out.size();
  if (write_json(out, value)) return;
  out.resize(before);
  Bytes bytes;
  append_msgpack(bytes, value);
  append_msgpack_json(out, bytes);
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < text.size();) {
    // A run of characters written as they are goes in one append.
    std::size_t plain = i;
    while (plain < text.size()) {
      const auto b = static_cast<unsigned char>(text[plain]);
      if (b < 0x20 || b >= 0x80 || b == '"' || b == '\\') break;
      ++plain;
    }
    if (plain > i) {
      out.append(text.data() + i, plain - i);
      i = plain;
      if (i == text.size()) break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence(text, i);
      if (n == 0) {
        // Invalid UTF-8: fall back to the JSON library's own replacement rule
        // (U+FFFD), so this writer and Value::dump agree byte for byte.
        std::string rest = Value(std::string(text.substr(i))).dump(-1, ' ', false, Value::error_handler_t::replace);
        out.append(rest, 1, std::string::npos);  // its opening quote is ours already
        return;
      }
      out.append(text.data() + i, n);
      i += n;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

namespace {

// nlohmann's layout of a float's significant digits (its to_chars, which
// Value::dump() uses): `k` digits d1..dk of value 0.d1..dk x 10^point.
// Fixed notation for 1e-4 <= value < 1e15, a whole number with ".0"
// ("12.0"); otherwise d.ddde-05 / de+16, the exponent of at least two digits.
void append_laid_out(std::string& out, const char* digits, int k, int point) {
  constexpr int kMinPoint = -4, kMaxPoint = 15;  // nlohmann's kMinExp, kMaxExp (digits10)
  if (k <= point && point <= kMaxPoint) {
    out.append(digits, std::size_t(k));
    out.append(std::size_t(point - k), '0');
    out += ".0";
  } else if (0 < point && point <= kMaxPoint) {
    out.append(digits, std::size_t(point));
    out += '.';
    out.append(digits + point, std::size_t(k - point));
  } else if (kMinPoint < point && point <= 0) {
    out += "0.";
    out.append(std::size_t(-point), '0');
    out.append(digits, std::size_t(k));
  } else {
    out += digits[0];
    if (k > 1) {
      out += '.';
      out.append(digits + 1, std::size_t(k - 1));
    }
    const int exponent = point - 1;
    out += exponent < 0 ? "e-" : "e+";
    const int magnitude = exponent < 0 ? -exponent : exponent;
    if (magnitude < 10) out += '0';
    char text[8];
    out.append(text, std::to_chars(text, text + sizeof text, magnitude).ptr);
  }
}

}  // namespace

void append_json_float(std::string& out, double value) {
  if (std::isnan(value)) return void(out += "\"nan\"");
  if (std::isinf(value)) return void(out += value > 0 ? "\"inf\"" : "\"-inf\"");
  if (std::signbit(value)) out += '-', value = -value;
  if (value == 0) return void(out += "0.0");
  // The shortest digits that read back as `value` (libstdc++'s Ryu), as
  // "d.ddde-05"; grisu2, nlohmann's, is longer for about 1 double in 200.
  char text[32];
  const char* const end = std::to_chars(text, text + sizeof text, value, std::chars_format::scientific).ptr;
  const char* const e = std::find(static_cast<const char*>(text), end, 'e');
  char digits[24];
  int k = 0;
  for (const char* c = text; c != e; ++c)
    if (*c != '.') digits[k++] = *c;
  int exponent = 0;
  std::from_chars(e + (e[1] == '+' ? 2 : 1), end, exponent);
  append_laid_out(out, digits, k, exponent + 1);
}

void append_json_seconds(std::string& out, double seconds) {
  // n / 1e9 rounded is `seconds`, so n's digits, trailing zeros dropped,
  // round-trip; with at most 15 of them no shorter decimal lies within half
  // an ulp (1.1e-16 of the value) of it: they are append_json_float's digits.
  constexpr double kMaxNs = 1e15;
  if (!(seconds > 0 && seconds * 1e9 < kMaxNs)) return append_json_float(out, seconds);
  const auto ns = static_cast<std::uint64_t>(std::llround(seconds * 1e9));
  if (double(ns) / 1e9 != seconds) return append_json_float(out, seconds);
  char digits[24];
  int k = int(std::to_chars(digits, digits + sizeof digits, ns).ptr - digits);
  int exponent = -9;  // the value is digits x 10^exponent
  while (k > 1 && digits[k - 1] == '0') --k, ++exponent;
  append_laid_out(out, digits, k, k + exponent);
}

void append_msgpack_int(Bytes& out, std::int64_t v) {
  auto put = [&](std::uint8_t type, std::uint64_t bits, int bytes) {
    out += static_cast<char>(type);
    for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) out += static_cast<char>(bits >> shift);
  };
  if (v >= 0) {
    if (v < 128) out += static_cast<char>(v);
    else if (v < 256) put(0xcc, std::uint64_t(v), 1);
    else if (v < 65536) put(0xcd, std::uint64_t(v), 2);
    else if (v <= 0xffffffffLL) put(0xce, std::uint64_t(v), 4);
    else put(0xcf, std::uint64_t(v), 8);
  } else {
    if (v >= -32) out += static_cast<char>(static_cast<std::int8_t>(v));
    else if (v >= INT8_MIN) put(0xd0, std::uint64_t(v), 1);
    else if (v >= INT16_MIN) put(0xd1, std::uint64_t(v), 2);
    else if (v >= INT32_MIN) put(0xd2, std::uint64_t(v), 4);
    else put(0xd3, std::uint64_t(v), 8);
  }
}

namespace {
void put_sized(Bytes& out, std::uint8_t fix, std::uint32_t fix_limit, std::uint8_t t8, std::uint8_t t16,
               std::uint8_t t32, std::uint32_t n) {
  if (n < fix_limit) {
    out += static_cast<char>(fix | n);
    return;
  }
  int bytes;
  if (t8 && n < 256) out += static_cast<char>(t8), bytes = 1;
  else if (n < 65536) out += static_cast<char>(t16), bytes = 2;
  else out += static_cast<char>(t32), bytes = 4;
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) out += static_cast<char>(n >> shift);
}
}  // namespace

void append_msgpack_string(Bytes& out, std::string_view text) {
  put_sized(out, 0xa0, 32, 0xd9, 0xda, 0xdb, static_cast<std::uint32_t>(text.size()));
  out.append(text);
}

void append_msgpack_array_header(Bytes& out, std::uint32_t count) {
  put_sized(out, 0x90, 16, 0, 0xdc, 0xdd, count);
}

void append_msgpack_map_header(Bytes& out, std::uint32_t count) {
  put_sized(out, 0x80, 16, 0, 0xde, 0xdf, count);
}

}  // namespace mathpool::detail
