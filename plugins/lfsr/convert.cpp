#include "convert.hpp"

#include <algorithm>

namespace lfsr_plugin {

void check_known(const mathpool::Params& params, const std::vector<std::string>& known) {
  const mathpool::Value& raw = params.raw();
  if (raw.is_null()) return;
  if (!raw.is_object()) throw mathpool::InvalidParams("parameters must be a map, got " + raw.dump());
  for (const auto& item : raw.items())
    if (std::find(known.begin(), known.end(), item.key()) == known.end())
      throw mathpool::InvalidParams("unknown parameter '" + item.key() + "'");
}

lfsr::Field field_param(const mathpool::Params& params) {
  const std::int64_t q = params.integer("field");
  if (q < 2) throw mathpool::InvalidParams("parameter 'field': must be a prime power q >= 2, got " + std::to_string(q));
  return translating([&] { return lfsr::Field(static_cast<std::uint64_t>(q)); });
}

std::vector<std::uint64_t> elements_param(const mathpool::Params& params, const char* name,
                                          const lfsr::Field& field) {
  const std::vector<std::int64_t> raw = params.integers(name);
  if (raw.empty()) throw mathpool::InvalidParams(std::string("parameter '") + name + "': the list must not be empty");
  std::vector<std::uint64_t> out(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] < 0 || static_cast<std::uint64_t>(raw[i]) >= field.q())
      throw mathpool::InvalidParams(std::string("parameter '") + name + "': item " + std::to_string(i) + " = " +
                                    std::to_string(raw[i]) + " is out of range for GF(" +
                                    std::to_string(field.q()) + "): need 0 <= v < " + std::to_string(field.q()));
    out[i] = static_cast<std::uint64_t>(raw[i]);
  }
  return out;
}

mathpool::Value big(const lfsr::BigInt& x) {
  if (auto v = x.to_int64()) return *v;
  return mathpool::big_integer(x.str());
}

mathpool::Value elements(const std::vector<std::uint64_t>& v) {
  mathpool::Value out = mathpool::Value::array();
  for (auto x : v) out.push_back(x);
  return out;
}

}  // namespace lfsr_plugin
