// strict_value.hpp: two values equal and of the same JSON types all the way
// down (nlohmann's == takes unsigned 5 for signed 5), binaries with the same
// subtype, NaN equal to NaN. Used by the record-JSON tests and the channel
// fuzzer to compare our MessagePack reader with nlohmann's.
#pragma once

#include <cmath>

#include "mathpool/value.hpp"

namespace mathpool::test {

inline bool identical(const Value& a, const Value& b) {
  if (a.type() != b.type()) return false;
  if (a.is_binary())
    return a.get_binary() == b.get_binary() && a.get_binary().has_subtype() == b.get_binary().has_subtype() &&
           a.get_binary().subtype() == b.get_binary().subtype();
  if (a.is_array() || a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j)
      if ((a.is_object() && i.key() != j.key()) || !identical(*i, *j)) return false;
    return true;
  }
  if (a.is_number_float() && std::isnan(a.get<double>())) return std::isnan(b.get<double>());
  return a == b;
}

}  // namespace mathpool::test
