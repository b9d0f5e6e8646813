// plugin_search.hpp: where a host finds its worker program and plugins.
#pragma once

#include <filesystem>

namespace mathpool::detail {

// The directory holding libmathpool_host (the build tree and an installed
// prefix share the layout: lib/, lib/mathpool/, lib/mathpool/plugins/).
std::filesystem::path host_library_dir();
// $MATHPOOL_WORKER, else lib/mathpool/mathpool-worker beside this library.
std::filesystem::path default_worker_program();
// The plugin directory installed (or built) with this library.
std::filesystem::path default_plugin_dir();
// The cores this process may run on (its CPU affinity), at least 1.
int available_cores();

}  // namespace mathpool::detail
