// options_value.hpp: PoolOptions as a Value map of its fields' user forms
// (pool_options_table.hpp: the one list of its fields). The MPI protocol
// sends options to other ranks in this form; describe() prints it; the
// Python module builds options from keyword arguments through it.
#pragma once

#include "mathpool/pool.hpp"

namespace mathpool::detail {

// Every field, in the table's order, in its user form ("30s", "auto", "none").
Value options_to_value(const PoolOptions& options);
// Options from a map of user forms; fields left out keep their defaults.
// Throws mathpool::Error (invalid_config) naming the key and what is wrong,
// or an unknown key with the known ones.
PoolOptions options_from_value(const Value& map);

}  // namespace mathpool::detail
