#include <fmt/format.h>

#include "mathpool/analysis.hpp"

namespace mathpool {
namespace {

[[noreturn]] void wrong_type(std::string_view name, std::string_view expected, const Value& got) {
  throw InvalidParams(fmt::format("parameter '{}' must be {}, got {}", name, expected, got.dump()));
}

bool is_integer(const Value& v) { return v.is_number_integer(); }

std::int64_t as_int64(std::string_view name, const Value& v) {
  if (is_big_integer(v))
    throw InvalidParams(fmt::format("parameter '{}' is out of range: {}", name, big_integer_text(v)));
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
    throw InvalidParams(fmt::format("parameter '{}' is out of range: {}", name, v.dump()));
  if (!is_integer(v)) wrong_type(name, "an integer", v);
  return v.get<std::int64_t>();
}

}  // namespace

bool Params::has(std::string_view name) const {
  return params_->is_object() && params_->contains(name) && !(*params_)[std::string(name)].is_null();
}

const Value& Params::at(std::string_view name) const {
  if (!has(name)) throw InvalidParams(fmt::format("parameter '{}' is required", name));
  return params_->find(name).value();
}

std::int64_t Params::integer(std::string_view name) const { return as_int64(name, at(name)); }

std::int64_t Params::integer(std::string_view name, std::int64_t fallback) const {
  return has(name) ? integer(name) : fallback;
}

bool Params::boolean(std::string_view name, bool fallback) const {
  if (!has(name)) return fallback;
  const Value& v = at(name);
  if (!v.is_boolean()) wrong_type(name, "true or false", v);
  return v.get<bool>();
}

std::string Params::string(std::string_view name, const std::string& fallback) const {
  if (!has(name)) return fallback;
  const Value& v = at(name);
  if (!v.is_string()) wrong_type(name, "a string", v);
  return v.get<std::string>();
}

std::vector<std::int64_t> Params::integers(std::string_view name) const {
  const Value& v = at(name);
  if (!v.is_array()) wrong_type(name, "a list of integers", v);
  std::vector<std::int64_t> out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!is_integer(v[i]))
      throw InvalidParams(fmt::format("parameter '{}' must be a list of integers; item {} is {}",
                                      name, i, v[i].dump()));
    out.push_back(as_int64(name, v[i]));
  }
  return out;
}

}  // namespace mathpool
