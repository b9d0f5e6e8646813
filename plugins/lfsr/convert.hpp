// Parameter parsing and result conversion shared by the lfsr analyses.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <lfsr/lfsr.hpp>
#include <mathpool/analysis.hpp>

namespace lfsr_plugin {

// Runs f, turning the library's std::invalid_argument ("name: detail") into
// mathpool::InvalidParams ("parameter 'name': detail").
template <class F>
auto translating(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    const auto colon = msg.find(": ");
    if (colon != std::string::npos && msg.find(' ') > colon)
      msg = "parameter '" + msg.substr(0, colon) + "': " + msg.substr(colon + 2);
    throw mathpool::InvalidParams(msg);
  }
}

// Rejects parameters not in `known` (the analysis's documented names).
void check_known(const mathpool::Params& params, const std::vector<std::string>& known);

lfsr::Field field_param(const mathpool::Params& params);
// A required, non-empty list of field elements (0 <= v < q).
std::vector<std::uint64_t> elements_param(const mathpool::Params& params, const char* name,
                                          const lfsr::Field& field);

// Integers that do not fit in 64 bits become SDK big integers
// (mathpool::big_integer): records write them as decimal strings, since JSON
// readers may hold integers as doubles or int64 and would round or reject
// larger ones; the Python module gives an int.
mathpool::Value big(const lfsr::BigInt& x);
mathpool::Value elements(const std::vector<std::uint64_t>& v);

}  // namespace lfsr_plugin
