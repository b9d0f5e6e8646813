#include "options_value.hpp"

#include <stdexcept>

#include <fmt/format.h>

#include "pool_options_table.hpp"

namespace mathpool::detail {

Value options_to_value(const PoolOptions& options) {
  Value map = Value::object();
  for (const auto& field : pool_option_fields()) map[std::string(field.name)] = field.get(options);
  return map;
}

PoolOptions options_from_value(const Value& map) {
  if (!map.is_object()) throw Error(ErrorKind::invalid_config, "malformed pool options: not a map");
  PoolOptions options;
  for (const auto& [key, value] : map.items()) {
    const PoolOptionField* field = find_pool_option(key);
    if (!field)
      throw Error(ErrorKind::invalid_config, fmt::format("malformed pool options: unknown option '{}' (known: {})", key,
                                                         pool_option_names(false)));
    try {
      field->set(options, value);
    } catch (const std::invalid_argument& e) {
      throw Error(ErrorKind::invalid_config, fmt::format("malformed pool options: '{}' {}", key, e.what()));
    }
  }
  return options;
}

}  // namespace mathpool::detail
