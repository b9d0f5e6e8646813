// Record JSON written straight from a value (append_value_json) against the
// same value's MessagePack transcoded (append_msgpack_json), the way records
// were written before: byte for byte, on chosen edge cases and on random
// values. Workers write results the first way, hosts read the second.
#include <gtest/gtest.h>

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string_view>

#include "common/msgpack_json.hpp"
#include "strict_value.hpp"

namespace mathpool {
namespace {

std::string by_msgpack(const Value& v) {
  detail::Bytes bytes;
  detail::append_msgpack(bytes, v);
  std::string json;
  detail::append_msgpack_json(json, bytes);
  return json;
}

std::string direct(const Value& v) {
  std::string json = "x";  // appends: what is there stays
  detail::append_value_json(json, v);
  return json.substr(1);
}

TEST(RecordJson, EdgeCasesAreWrittenAsTheirMessagePackWas) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<Value> cases = {
      Value(), Value(true), Value(false), Value(0), Value(-1), Value(-33), Value(INT64_MIN), Value(INT64_MAX),
      Value(std::uint64_t(INT64_MAX) + 1), Value(UINT64_MAX), Value(0.5), Value(0.1), Value(-0.0), Value(1e300),
      Value(1.0f / 3), Value(std::nan("")), Value(inf), Value(-inf), Value(5e-324), Value(""),
      Value("plain"), Value("quote \" backslash \\ / tab \t nl \n cr \r bs \b ff \f bell \x07 del \x7f"),
      Value("unicode \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), Value("bad \xff utf-8 \xc3"), Value("\xed\xa0\x80"),
      Value(std::string("nul \0 inside", 12)), Value::binary({}), Value::binary({1, 2, 255}),
      Value::binary({1, 2}, 7), Value::binary({9}, 200), big_integer("-123456789012345678901234567890"),
      Value::array(), Value::object(), Value{{"a", 1}, {"b", {1, 2.5, "x", nullptr}}, {"", Value::object()}},
      Value{{"z", 1}, {"a", 2}, {"\xc3\xa9\"", {{"deep", {{"deeper", Value::array({Value::array()})}}}}}}};
  for (const auto& v : cases) EXPECT_EQ(direct(v), by_msgpack(v)) << v.dump();
}

Value random_value(std::mt19937_64& rng, int depth) {
  std::uniform_int_distribution<int> kind(0, depth > 0 ? 9 : 7);
  switch (kind(rng)) {
    case 0: return Value();
    case 1: return Value(bool(rng() & 1));
    case 2: return Value(std::int64_t(rng()) >> (rng() % 64));
    case 3: return Value(std::uint64_t(rng()) >> (rng() % 64));
    case 4: {
      std::uint64_t bits = rng();
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return Value(rng() & 1 ? d : double(float(std::ldexp(double(bits % 1000) - 500, int(rng() % 40) - 20))));
    }
    case 5: {
      std::string s(rng() % 12, ' ');
      for (auto& c : s) c = char(rng() % 4 ? 0x20 + rng() % 95 : rng() % 256);
      return Value(s);
    }
    case 6: {
      std::vector<std::uint8_t> bytes(rng() % 5);
      for (auto& b : bytes) b = std::uint8_t(rng());
      return rng() % 3 ? Value::binary(bytes, rng() % 256) : Value::binary(bytes);
    }
    case 7: return big_integer(std::to_string(rng()) + std::to_string(rng()));
    case 8: {
      Value a = Value::array();
      for (int n = int(rng() % 5); n > 0; --n) a.push_back(random_value(rng, depth - 1));
      return a;
    }
    default: {
      Value o = Value::object();
      for (int n = int(rng() % 5); n > 0; --n) o[std::to_string(rng() % 100)] = random_value(rng, depth - 1);
      return o;
    }
  }
}

TEST(RecordJson, RandomValuesAreWrittenAsTheirMessagePackWas) {
  std::mt19937_64 rng(20261206);
  for (int i = 0; i < 20000; ++i) {
    const Value v = random_value(rng, 4);
    ASSERT_EQ(direct(v), by_msgpack(v)) << "value " << i << ": " << v.dump(-1, ' ', false, Value::error_handler_t::replace);
  }
}

// A number's significant digits and the power of ten of the first, from
// its text ("0.00012" and "1.2e-04": {"12", -4}).
std::pair<std::string, int> significant(const std::string& text) {
  const std::size_t e = text.find_first_of("eE");
  int power = e == std::string::npos ? 0 : std::stoi(text.substr(e + 1));
  const std::string mantissa = text.substr(0, e);
  const std::size_t point = std::min(mantissa.find('.'), mantissa.size());
  std::string digits;
  int first = 0;  // the first significant digit's place, from the point
  for (std::size_t i = 0; i < mantissa.size(); ++i) {
    if (mantissa[i] < '0' || mantissa[i] > '9' || (digits.empty() && mantissa[i] == '0')) continue;
    if (digits.empty()) first = i < point ? int(point - i) - 1 : -int(i - point);
    digits += mantissa[i];
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  return {digits, power + first};
}

// The shortest digits that read back as `value`, by an independent
// algorithm (libstdc++'s Ryu, std::to_chars), as "d.ddde-05".
std::string shortest(double value) {
  char buffer[64];
  return std::string(buffer, std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific).ptr);
}

// A record's float is the shortest round trip laid out as nlohmann's
// Value::dump() lays out floats. Oracles: the text reads back as the same
// double; its digits are std::to_chars's; and wherever dump()'s grisu2
// found the same digits, the bytes are dump()'s. Returns whether grisu2's
// differed (longer: "8.033000000000001e-06" for 8033 ns; or as long and
// farther from the double).
bool expect_shortest_as_dump(const std::string& ours, double value) {
  const std::string dump = Value(value).dump();
  EXPECT_EQ(std::strtod(ours.c_str(), nullptr), value) << ours;
  EXPECT_EQ(significant(ours), significant(shortest(std::fabs(value)))) << ours << " against " << shortest(value);
  if (significant(dump) == significant(ours)) {
    EXPECT_EQ(ours, dump);
    return false;
  }
  // Shorter, or as long and nearer the double (of two 17-digit round trips,
  // Ryu takes the nearer; grisu2 may not).
  EXPECT_LE(significant(ours).first.size(), significant(dump).first.size()) << ours << " against " << dump;
  return true;
}

std::string json_float(double value) {
  std::string out = "x";  // appends: what is there stays
  detail::append_json_float(out, value);
  return out.substr(1);
}

std::string json_seconds(double value) {
  std::string out = "x";
  detail::append_json_seconds(out, value);
  return out.substr(1);
}

// Every float of a record: random doubles over the whole range (random
// bits), and the edges of each notation.
TEST(RecordJson, FloatsAreTheShortestRoundTripLaidOutAsValueDumpLaysThemOut) {
  std::mt19937_64 random(20261207);
  std::size_t checked = 0, longer = 0;
  for (int i = 0; i < 40000; ++i) {
    const double value = std::bit_cast<double>(random());
    if (!std::isfinite(value)) continue;
    longer += expect_shortest_as_dump(json_float(value), value);
    ++checked;
    if (HasFailure()) return;
  }
  for (double value : {0.0001, 0.00009999999999999999, 1e15, 999999999999999.9, 1e16, 123456789012345.6, 1.0, 12.0,
                       0.5, 1e-5, 1e-300, 5e-324, 1.7976931348623157e308, -2.5, 1e21, 1e100, 100.0})
    expect_shortest_as_dump(json_float(value), value);
  EXPECT_EQ(json_float(0.0), "0.0");
  EXPECT_EQ(json_float(-0.0), "-0.0");
  EXPECT_EQ(json_float(std::nan("")), "\"nan\"");
  EXPECT_EQ(json_float(-std::numeric_limits<double>::infinity()), "\"-inf\"");
  EXPECT_EQ(json_float(8033e-9), "8.033e-06");
  EXPECT_GT(checked, 39000u);
  EXPECT_LT(longer, checked / 50) << "grisu2 longer than the shortest";
}

// A record's `seconds` is written from its nanoseconds without a float
// search: the same bytes as append_json_float, on every decade from 1 ns to
// days, on durations that are no whole nanoseconds, and on the edges.
TEST(RecordJson, SecondsAreWrittenAsAnyFloatIs) {
  std::mt19937_64 random(20261207);
  std::size_t checked = 0;
  for (std::uint64_t top = 10; top <= 1000000000000000000ULL; top *= 10) {
    std::uniform_int_distribution<std::uint64_t> ns(top / 10, top - 1);
    for (int i = 0; i < 6000; ++i) {
      const std::uint64_t n = i < 20 ? top / 10 + std::uint64_t(i) : ns(random);
      for (const double s : {double(n) / 1e9, std::nextafter(double(n) / 1e9, 1e300)}) {
        ASSERT_EQ(json_seconds(s), json_float(s)) << n << " ns";
        ++checked;
      }
    }
  }
  for (double s : {0.0, -0.0, -1.5, 1e-9, 1.0, 0.1, 0.0001, 999999.999999999, 1e6, 1e15,
                   std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::max(), std::nan("")})
    EXPECT_EQ(json_seconds(s), json_float(s)) << s;
  EXPECT_EQ(json_seconds(8033e-9), "8.033e-06");
  EXPECT_GT(checked, 200000u);
}

// A worker skips encoding a result's MessagePack to check its size when 3
// times its JSON is under the frame limit (run_ranges.cpp): the bound holds.
TEST(RecordJson, AValuesMessagePackIsAtMostThreeTimesItsJson) {
  for (const Value& v : {Value(0.1), Value(-0.1), Value(""), Value::array(), Value::object(), Value(-1),
                         Value{0.1, 0.2, 0.3}, Value{{"", 0.1}}, big_integer("12345678901234567890123")}) {
    detail::Bytes bytes;
    detail::append_msgpack(bytes, v);
    EXPECT_LE(bytes.size(), 3 * direct(v).size()) << v.dump();
  }
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i) {
    const Value v = random_value(rng, 4);
    detail::Bytes bytes;
    detail::append_msgpack(bytes, v);
    ASSERT_LE(bytes.size(), 3 * direct(v).size()) << "value " << i;
  }
}


Value by_nlohmann(std::string_view bytes) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  return Value::from_msgpack(p, p + bytes.size(), true, false);
}

TEST(MessagePackDecode, ChosenBytesDecodeAsNlohmannDecodesThem) {
  using namespace std::literals;
  const std::vector<std::string_view> cases = {
      "\x05"sv, "\xcc\x05"sv, "\xd0\x05"sv, "\xd0\xfb"sv, "\xff"sv, "\xd3\x7f\xff\xff\xff\xff\xff\xff\xff"sv,
      "\xcf\xff\xff\xff\xff\xff\xff\xff\xff"sv, "\xca\x3f\x00\x00\x00"sv, "\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a"sv,
      "\xc0"sv, "\xc2"sv, "\xc3"sv, "\xa0"sv, "\xa3" "a\xff" "c"sv, "\xd9\x01z"sv, "\xc4\x02\x01\x02"sv, "\xd4\xfb\x01"sv,
      "\xc7\x03\x01" "123"sv, "\x90"sv, "\x80"sv, "\x83\xa1" "a\x01\xa1" "b\x02\xa1" "a\x03"sv,
      "\x92\x91\x80\x81\xa0\x90"sv};
  for (const std::string_view bytes : cases) {
    const Value ours = detail::msgpack_to_value(bytes), theirs = by_nlohmann(bytes);
    EXPECT_TRUE(test::identical(ours, theirs)) << ours.dump() << " against " << theirs.dump();
  }
}

// A map past the scanned size (32 members) finds a key given twice through
// its index: first place, last value, as nlohmann's scan had it.
TEST(MessagePackDecode, ALargeMapWithKeysGivenTwiceDecodesAsNlohmannDecodesIt) {
  std::string bytes = "\xde";  // map16
  bytes += char(0), bytes += char(100);
  for (int i = 0; i < 100; ++i) {
    const std::string key = "k" + std::to_string(i % 37);
    bytes += char(0xa0 | key.size());
    bytes += key;
    bytes += char(i % 100);  // a positive fixint
  }
  const Value ours = detail::msgpack_to_value(bytes), theirs = by_nlohmann(bytes);
  EXPECT_EQ(ours.size(), 37u);
  EXPECT_EQ(ours["k0"], 74);
  EXPECT_TRUE(test::identical(ours, theirs)) << ours.dump() << " against " << theirs.dump();
}

TEST(MessagePackDecode, RandomValuesDecodeAsNlohmannDecodesThem) {
  std::mt19937_64 rng(61206);
  for (int i = 0; i < 20000; ++i) {
    detail::Bytes bytes;
    detail::append_msgpack(bytes, random_value(rng, 4));
    const Value ours = detail::msgpack_to_value(bytes), theirs = by_nlohmann(bytes);
    ASSERT_TRUE(test::identical(ours, theirs)) << "value " << i;
  }
}

}  // namespace
}  // namespace mathpool
