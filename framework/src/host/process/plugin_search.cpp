#include "plugin_search.hpp"

#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "mathpool/pool.hpp"
#include "plugin_trust.hpp"

namespace mathpool {
namespace detail {

std::filesystem::path host_library_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&host_library_dir), &info) == 0 || !info.dli_fname)
    return {};
  std::error_code ec;
  auto path = std::filesystem::canonical(info.dli_fname, ec);
  return ec ? std::filesystem::path(info.dli_fname).parent_path() : path.parent_path();
}

std::filesystem::path default_worker_program() {
  if (const char* env = std::getenv("MATHPOOL_WORKER"); env && *env) return env;
  return host_library_dir() / "mathpool" / "mathpool-worker";
}

std::filesystem::path default_plugin_dir() { return host_library_dir() / "mathpool" / "plugins"; }

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

namespace {

// Refuses a plugin file another user could change (see plugin_trust.hpp). A
// missing file passes: the worker reports it by name.
void check_file(const std::filesystem::path& file, const PoolOptions& options) {
  if (options.allow_insecure_plugins) return;
  const PluginFile opened = PluginFile::open(file, false);
  if (!opened.ok() && opened.fd() >= 0)
    throw Error(ErrorKind::plugin_error, fmt::format("plugin {} is {}", file.string(), opened.problem()));
}

// Refuses a searched directory another user could add files to or change.
void check_directory(const std::filesystem::path& dir, const PoolOptions& options) {
  if (options.allow_insecure_plugins) return;
  if (std::string why = search_directory_problem(dir); !why.empty())
    throw Error(ErrorKind::plugin_error, fmt::format("plugin path {} is {}", dir.string(), why));
}

}  // namespace
}  // namespace detail

std::vector<std::filesystem::path> find_plugin_files(const PoolOptions& options) {
  namespace fs = std::filesystem;
  std::vector<fs::path> roots;
  if (options.default_plugin_paths) {
    if (auto dir = detail::default_plugin_dir(); fs::is_directory(dir)) roots.push_back(dir);
    if (const char* env = std::getenv("MATHPOOL_PLUGIN_PATH"); env && *env) {
      std::stringstream list(env);
      for (std::string item; std::getline(list, item, ':');)
        if (!item.empty()) roots.emplace_back(item);
    }
  }
  roots.insert(roots.end(), options.plugin_paths.begin(), options.plugin_paths.end());

  std::vector<fs::path> files;
  std::set<fs::path> seen;
  auto add = [&](const fs::path& file) {
    std::error_code ec;
    fs::path canonical = fs::canonical(file, ec);
    if (ec) canonical = file;
    if (seen.insert(canonical).second) {
      detail::check_file(canonical, options);
      files.push_back(canonical);
    }
  };
  for (const fs::path& root : roots) {
    std::error_code ec;
    if (fs::is_directory(root, ec)) {
      detail::check_directory(root, options);
      std::vector<fs::path> in_dir;
      for (const auto& entry : fs::directory_iterator(root, ec))
        if (entry.is_regular_file() && entry.path().extension() == ".so")
          in_dir.push_back(entry.path());
      std::sort(in_dir.begin(), in_dir.end());
      for (const auto& file : in_dir) add(file);
    } else {
      add(root);  // a file, or a missing path the worker will report by name
    }
  }
  return files;
}

}  // namespace mathpool
