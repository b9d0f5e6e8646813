// mathpool/value.hpp: the value tree that carries parameters and results.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace mathpool {

// A value tree: null, bool, integer, float, string, list or map. Maps keep the
// order of their keys, so records and results print the way they were built.
// Plain value semantics; not thread-safe for concurrent mutation.
using Value = nlohmann::ordered_json;

// Big integers: integers past 64 bits (signed or unsigned).
//
//   out["order"] = mathpool::big_integer(order.str());   // any size; small ones stay plain integers
//   if (mathpool::is_big_integer(v)) text = mathpool::big_integer_text(v);
//
// A big integer is held as a binary Value of subtype kBigIntegerSubtype whose
// bytes are its canonical decimal text ("-" for a negative one, then digits,
// no leading zeros). In MessagePack it is the ext type kBigIntegerSubtype, so
// it crosses the worker protocol unchanged. Result records write it as a
// decimal string, as they write every integer past signed 64 bits; the Python
// module gives an `int`. Value::dump() shows the binary form: use
// big_integer_text() for text.
inline constexpr std::uint8_t kBigIntegerSubtype = 1;

// The integer whose decimal text is `decimal` (an optional sign, then digits).
// One that fits in 64 bits (std::int64_t, or std::uint64_t when positive) is
// a plain integer Value; any other is a big integer. Throws
// std::invalid_argument for text that is not a decimal integer.
Value big_integer(std::string_view decimal);
// Whether `value` is a big integer (see big_integer()).
bool is_big_integer(const Value& value) noexcept;
// The decimal text of a big integer or of a plain integer Value; throws
// std::invalid_argument for any other value.
std::string big_integer_text(const Value& value);

}  // namespace mathpool
