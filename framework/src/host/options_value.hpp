// options_value.hpp: PoolOptions as a Value map, the one list of its fields
// outside the struct (and its defaulted operator==). The MPI protocol sends
// options to other ranks in this form; describe() prints it.
#pragma once

#include "mathpool/pool.hpp"

namespace mathpool::detail {

// Every field, in declaration order. task_timeout_ms is null for none;
// worker_program is "" for the installed one; preload is "all" or a list of
// analysis names.
Value options_to_value(const PoolOptions& options);
// The inverse (worker_program may be left out). Throws mathpool::Error
// (invalid_config) naming what is wrong.
PoolOptions options_from_value(const Value& map);

}  // namespace mathpool::detail
