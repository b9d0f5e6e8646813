#include "plugin_search.hpp"

#include <dlfcn.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "mathpool/pool.hpp"

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

// Someone other than us (or root) could change what loads from `path`: it is
// theirs, or anyone may write it. (A sticky shared directory like /tmp still
// lets others drop files in, so it counts as writable.)
bool writable_by_others(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  const bool foreign_owner = st.st_uid != 0 && st.st_uid != ::geteuid();
  return foreign_owner || (st.st_mode & S_IWOTH) != 0;
}

void check_safe(const std::filesystem::path& path, const PoolOptions& options) {
  if (options.allow_insecure_plugins) return;
  if (writable_by_others(path))
    throw Error(ErrorKind::plugin_error,
                fmt::format("plugin path {} is writable by other users; refusing to load from it "
                            "(allow insecure plugins to override)",
                            path.string()));
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
      detail::check_safe(canonical, options);
      files.push_back(canonical);
    }
  };
  for (const fs::path& root : roots) {
    std::error_code ec;
    if (fs::is_directory(root, ec)) {
      detail::check_safe(root, options);
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
