// pool_options_map.hpp: PoolOptions from a map of the config's `pool:` keys,
// for programs that take pool options as named arguments (the Python
// module's keyword arguments: docs/python.md).
#pragma once

#include <string_view>
#include <vector>

#include "mathpool/pool.hpp"

namespace mathpool::detail {

// The keys pool_options_from_map() takes, in the order its messages list them.
const std::vector<std::string_view>& pool_option_keys();

// `map` holds any of the keys of a config's `pool:` section, with the same
// value forms: workers (an integer >= 1 or "auto"), start ("zygote" or
// "spawn"), isolation ("worker" or "task"), task_timeout and setup_timeout
// (a duration text such as "30s", a number of seconds, or null / "none" for
// none; setup_timeout may not be none), memory_limit (a size text such as
// "2GiB", a number of bytes, or null / "none"), max_tasks_per_worker and
// retries (integers >= 0), chunk_size (an integer >= 1 or "auto"); and the
// config's `plugin_path` (a path or a list of paths) and
// allow_insecure_plugins (true or false). A null map gives the defaults.
// Throws mathpool::Error (invalid_config) naming the key for a value it
// cannot use, or an unknown key with the known ones.
PoolOptions pool_options_from_map(const Value& map);

}  // namespace mathpool::detail
