// plugin_trust.hpp: whether a plugin file may be loaded, decided on an open
// descriptor so that what was checked is what gets loaded.
//
// The rule (shared by the host's plugin search and the worker's loader): only
// root or the current user may be able to change the plugin. So the file must
// be a regular file owned by root or the effective user and writable by
// neither group nor others, and so must every directory on its real path,
// except that a sticky directory (like /tmp) may be writable by others: there
// only an entry's owner may rename or remove it, so a private folder inside
// stays private. A directory that is searched for plugins must not be
// writable by others at all, sticky or not, or they could add files to it.
#pragma once

#include <filesystem>
#include <string>

namespace mathpool::detail {

// An open plugin file (O_RDONLY | O_CLOEXEC), or why it was not opened or is
// not trusted. Moves only; closes the descriptor unless it was released.
class PluginFile {
 public:
  PluginFile() = default;
  PluginFile(PluginFile&& other) noexcept;
  PluginFile& operator=(PluginFile&& other) noexcept;
  ~PluginFile();

  // Opens `file` and, unless `allow_insecure`, checks it by the rule above.
  static PluginFile open(const std::filesystem::path& file, bool allow_insecure);

  bool ok() const { return fd_ >= 0 && problem_.empty(); }
  // Why the file may not be loaded ("no such file", "... is world-writable").
  const std::string& problem() const { return problem_; }
  int fd() const { return fd_; }
  // A path naming exactly the open file ("/proc/self/fd/N"), for dlopen.
  std::string fd_path() const;
  // Moves the descriptor to a new, higher number (for a fresh fd_path()).
  void renumber();
  // Gives up ownership of the descriptor (to keep it open for good).
  int release();

 private:
  int fd_ = -1;
  std::string problem_;
};

// Why `dir`, a directory searched for plugins, is not trusted (it or a parent
// may be changed by another user), or empty when it is.
std::string search_directory_problem(const std::filesystem::path& dir);

// The end of every refusal message: how to override it.
inline constexpr const char* kInsecureOverrideHint =
    "--allow-insecure-plugins (PoolOptions::allow_insecure_plugins) overrides";

}  // namespace mathpool::detail
