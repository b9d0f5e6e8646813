// zygote_client.hpp: the host's handle on a zygote template process.
// Not thread-safe; used by the pool's dispatcher thread only.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "cgroup.hpp"
#include "mathpool/pool.hpp"
#include "worker_process.hpp"

namespace mathpool::detail {

// A template goes stopped -> starting (begin_start) -> ready (advance), and
// back to stopped when it dies, fails to start, or is stopped. Its start is
// asynchronous: the pool polls channel_fd() and pidfd() and calls advance(),
// so nothing waits for a slow setup.
class ZygoteTemplate {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Phase { stopped, starting, ready };

  ZygoteTemplate() = default;
  ~ZygoteTemplate() { stop(); }

  // Whether this system lets the host adopt forked workers (see AdoptionWindow).
  static bool supported();
  // Puts each template started from now on in a cgroup of `tree` (which
  // must outlive this), so what its setups start ends with it.
  void contain_in(CgroupTree* tree) noexcept { cgroups_ = tree; }
  // What the next template runs with; takes effect at the next begin_start().
  void configure(const std::filesystem::path& program, Value hello, std::chrono::milliseconds setup_timeout);

  // Spawns a template and sends it its hello (phase starting). Throws
  // mathpool::Error when it cannot be spawned.
  void begin_start();
  // While starting: reads what the template wrote, and kills it when it died
  // or is past its setup timeout. Returns its ready message (phase ready), or
  // nullopt while it is still starting; throws mathpool::Error when the
  // start failed (phase stopped; see died_in_setup, last_death_was_sigkill).
  std::optional<Value> advance(Clock::time_point now);
  // While starting: what to poll (input, and the process's end) and until when.
  int channel_fd() const noexcept { return channel_.fd(); }
  int pidfd() const noexcept { return pidfd_; }
  Clock::time_point deadline() const noexcept { return deadline_; }

  // Forks a ready-to-serve worker from the ready template. Throws
  // mathpool::Error when that fails; a dead template is then reaped (phase stopped).
  SpawnedWorker fork_worker();
  Phase phase() const noexcept { return phase_; }
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
  void stop();

 private:
  // Kills and reaps the template and all it started; returns its wait status.
  int end_process(const ProgressPage* page = nullptr);
  // Ends a start that failed and throws the reason.
  [[noreturn]] void fail_start(bool hung, const std::optional<Value>& refused);

  std::filesystem::path program_;
  std::chrono::milliseconds setup_timeout_{};
  Value hello_;
  Phase phase_ = Phase::stopped;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  ProgressMapping progress_;
  Clock::time_point started_at_, deadline_;
  CgroupTree* cgroups_ = nullptr;
  ProcessCgroup cgroup_;
  double start_seconds_ = 0;
  Channel channel_;
  std::string died_in_setup_;
  std::map<std::string, AnalysisStats> setup_costs_;
  bool last_death_was_sigkill_ = false;
  bool adopts_workers_ = true;  // the ready template double-forks (see AdoptionWindow)
};

}  // namespace mathpool::detail
