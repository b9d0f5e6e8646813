// plugin_loader.hpp: loads plugin files and collects their analyses.
//
// Libraries are never unloaded: objects a plugin created must not outlive its
// code, so a worker keeps every library until it exits. Not thread-safe.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mathpool/plugin.hpp"

namespace mathpool::detail {


// One analysis ready to run in this worker.
struct LoadedAnalysis {
  GuardedAnalysis guarded;
  std::string plugin_file;
  std::any setup_state;
  bool setup_done = false;
  std::optional<TaskError> setup_error;
  double setup_seconds = 0;
};

class PluginLoader {
 public:
  PluginLoader();
  ~PluginLoader();

  // Loads one plugin file; throws mathpool::Error naming the file and the reason
  // (missing, writable by other users, not a shared library, no entry point,
  // wrong API version or ABI, an analysis name already taken). The file is
  // opened once, checked on that descriptor (see plugin_trust.hpp) and loaded
  // through it, so what is checked is what runs.
  void load(const std::filesystem::path& file);
  // Skips the ownership and permission checks of load() (the pool option
  // allow_insecure_plugins).
  void allow_insecure(bool allow) { allow_insecure_ = allow; }

  // Runs the setup of `analysis` once; later calls return at once. Announces
  // each setup first through `on_setup`, so that if the setup kills the
  // process the host knows which analysis to blame.
  void ensure_setup(LoadedAnalysis& analysis);
  void on_setup(std::function<void(const std::string&)> announce) { announce_ = std::move(announce); }
  // Marks an analysis as quarantined: its setup never runs, its tasks fail.
  void quarantine(const std::string& name, const std::string& reason);

  std::map<std::string, LoadedAnalysis>& analyses() noexcept { return analyses_; }
  LoadedAnalysis* find(const std::string& name);

 private:
  struct Libraries;
  std::unique_ptr<Libraries> libraries_;
  std::map<std::string, LoadedAnalysis> analyses_;
  std::function<void(const std::string&)> announce_;
  bool allow_insecure_ = false;
};

// The catalogue entry the worker reports for an analysis.
Value describe(const LoadedAnalysis& analysis);

}  // namespace mathpool::detail
