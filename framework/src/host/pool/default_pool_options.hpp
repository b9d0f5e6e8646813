// default_pool_options.hpp: the options default_pool() is built with, shared
// with PoolRegistry::acquire() (no arguments).
#pragma once

#include "mathpool/pool.hpp"

namespace mathpool::detail {

// Those given to set_default_pool_options(), or else defaults with
// MATHPOOL_WORKERS and MATHPOOL_START; throws mathpool::Error (invalid_config)
// for a bad environment value. Thread-safe.
PoolOptions default_pool_options();

}  // namespace mathpool::detail
