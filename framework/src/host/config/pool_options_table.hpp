// pool_options_table.hpp: the one table of PoolOptions' fields. It drives
// the config's `pool:` reader, the Value round trip (the MPI hello, the
// registry's describe()) and the Python module's keyword arguments: a field
// added to PoolOptions is added here, once.
//
// Stateless; thread-safe.
#pragma once

#include <span>
#include <string_view>

#include "mathpool/pool.hpp"

namespace mathpool::detail {

struct PoolOptionField {
  std::string_view name;     // config `pool.NAME`, Value maps, describe(), Python keywords
  std::string_view meaning;  // one line, for docs and errors
  bool in_config;            // a config's `pool:` section may set it
  // The field in its user form, as a config writes it ("30s", "auto", 4, "none").
  Value (*get)(const PoolOptions&);
  // Sets the field from a user form: a string as a config writes it, or a
  // number, bool or list as a program passes it. Throws std::invalid_argument
  // saying what is wrong with the value (not naming the key).
  void (*set)(PoolOptions&, const Value&);
};

std::span<const PoolOptionField> pool_option_fields();
// The field named `name`, or nullptr.
const PoolOptionField* find_pool_option(std::string_view name);
// "workers, start, ..." (those a config may set when `config_only`).
std::string pool_option_names(bool config_only);

}  // namespace mathpool::detail
