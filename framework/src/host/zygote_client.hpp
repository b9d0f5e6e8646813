// zygote_client.hpp: the host's handle on a zygote template process.
// Not thread-safe; used by the pool's dispatcher thread only.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <string>

#include "mathpool/pool.hpp"
#include "worker_process.hpp"

namespace mathpool::detail {

class ZygoteTemplate {
 public:
  ZygoteTemplate() = default;
  ~ZygoteTemplate() { stop(); }

  // Whether this system lets the host adopt forked workers (see AdoptionWindow).
  static bool supported();
  // Starts the template, which loads the plugins and runs their setups once;
  // returns its ready message (catalogue and load errors). Throws
  // mathpool::Error when it dies first.
  Value start(const std::filesystem::path& program, Value hello,
              std::chrono::milliseconds setup_timeout);
  // Forks a ready-to-serve worker from the template (restarting a dead
  // template once). Throws mathpool::Error when that fails.
  SpawnedWorker fork_worker();
  bool running() const noexcept { return pid_ > 0; }
  pid_t pid() const noexcept { return pid_; }
  // Seconds the current template took to load the plugins and run the setups.
  double start_seconds() const noexcept { return start_seconds_; }
  // The setups every template so far ran (setups, setup_seconds), by analysis.
  const std::map<std::string, AnalysisStats>& setup_costs() const noexcept { return setup_costs_; }
  // The analysis whose setup was running when the template last died at start.
  const std::string& died_in_setup() const noexcept { return died_in_setup_; }
  // Whether the template's last death was a SIGKILL from outside.
  bool last_death_was_sigkill() const noexcept { return last_death_was_sigkill_; }
  // Stops the template; the next fork starts a new one with `hello`.
  void restart(Value hello);
  void stop();

 private:
  std::filesystem::path program_;
  std::chrono::milliseconds setup_timeout_{};
  Value hello_;
  pid_t pid_ = -1;
  double start_seconds_ = 0;
  Channel channel_;
  std::string died_in_setup_;
  std::map<std::string, AnalysisStats> setup_costs_;
  bool last_death_was_sigkill_ = false;
};

}  // namespace mathpool::detail
