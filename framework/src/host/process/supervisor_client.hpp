// supervisor_client.hpp: the host's handle on one supervisor process
// (protocol.hpp, process model). The host spawns it, sends its hello, and
// from then on only reads its frames and sends fork requests: nothing here
// blocks on it. Not thread-safe; the pool's dispatcher thread only.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "messages.hpp"
#include "cgroup.hpp"
#include "mathpool/pool.hpp"
#include "worker_process.hpp"

namespace mathpool::detail {

class SupervisorProcess {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Phase { starting, ready, ended };

  // A worker it made: the host owns the descriptors from here on.
  struct Forked {
    std::uint64_t request = 0;
    pid_t pid = -1;
    int channel_fd = -1;
    int pidfd = -1;
  };
  // What one read brought.
  struct Events {
    std::optional<ReadyMessage> ready;  // its ready message (zygote: the catalogue)
    std::vector<Forked> forked;
    std::vector<std::pair<std::uint64_t, std::string>> fork_failed;
    int threaded = 0;  // > 1: a fork was refused because the template has this many threads
    std::vector<std::pair<pid_t, int>> exited;  // worker pid, wait status
    // It ended, failed to start, or stopped answering; it has been killed and
    // reaped (phase ended). Why, in words.
    std::optional<std::string> ended;
  };

  // `hello` carries its mode ("zygote" or "spawn"). `cgroups` (may be null)
  // must outlive this.
  SupervisorProcess(const std::filesystem::path& program, HelloMessage hello, std::chrono::milliseconds setup_timeout,
                    std::chrono::milliseconds fork_timeout, CgroupTree* cgroups);
  ~SupervisorProcess() { stop(); }
  SupervisorProcess(const SupervisorProcess&) = delete;
  SupervisorProcess& operator=(const SupervisorProcess&) = delete;

  // Spawns it and sends its hello. Throws mathpool::Error when it cannot be spawned.
  void start();
  // Reads what it wrote; checks the start and fork deadlines (a supervisor
  // past one is killed: Events::ended). Never throws. Reads the channel and
  // the pidfd only after mark_readable() (or at first): the caller polls
  // them, and a read of nothing would cost two system calls per poll.
  Events read(Clock::time_point now);
  // Its channel or pidfd polled readable: the next read() looks at them.
  void mark_readable() noexcept { readable_ = true; }
  // Asks for one worker; the answer comes as Events::forked or fork_failed
  // with this request number, or the supervisor is killed at the deadline.
  std::uint64_t request_fork(Clock::time_point now);
  // Tells it whether tasks are in flight (protocol.hpp, watch); sent on changes only.
  void watch(bool busy);
  // Forgets an outstanding request (its slot stopped waiting).
  void cancel_fork(std::uint64_t request) { pending_.erase(request); }
  // Kills it (SIGKILL) and reaps it; its workers die with it. Idempotent.
  void kill(const std::string& why);
  // Asks it to end (its workers and everything below it die) and reaps it,
  // SIGKILL after a short grace. Idempotent.
  void stop();

  Phase phase() const noexcept { return phase_; }
  bool alive() const noexcept { return phase_ != Phase::ended; }
  pid_t pid() const noexcept { return pid_; }
  int channel_fd() const noexcept { return channel_.fd(); }
  bool wants_to_write() const noexcept { return channel_.has_queued(); }
  void write_some() { channel_.flush_some(); }
  int pidfd() const noexcept { return pidfd_; }
  // The next deadline (start, or the oldest fork request), or max().
  Clock::time_point deadline() const noexcept;
  double start_seconds() const noexcept { return start_seconds_; }
  const std::map<std::string, AnalysisStats>& setup_costs() const noexcept { return setup_costs_; }
  // The analysis whose setup was running when it ended during start-up.
  const std::string& died_in_setup() const noexcept { return died_in_setup_; }
  // Whether it ended by a SIGKILL from outside (not one of ours).
  bool killed_from_outside() const noexcept { return killed_from_outside_; }
  // Whether it ended because it did not answer in time (start or fork).
  bool hung() const noexcept { return hung_; }
  // Whether it got as far as its ready message.
  bool became_ready() const noexcept { return became_ready_; }
  const HelloMessage& hello() const noexcept { return hello_; }

 private:
  void handle_frame(const Frame& frame, Events& events);
  // Reaps it (after a SIGKILL when `kill`) and describes how it ended.
  std::string end(bool kill);

  std::filesystem::path program_;
  HelloMessage hello_;
  std::chrono::milliseconds setup_timeout_, fork_timeout_;
  CgroupTree* cgroups_;
  ProcessCgroup cgroup_;
  Phase phase_ = Phase::ended;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  Channel channel_;
  bool readable_ = true;  // see mark_readable()
  ProgressMapping progress_;
  Clock::time_point started_at_, start_deadline_;
  std::map<std::uint64_t, Clock::time_point> pending_;  // fork requests and their deadlines
  std::uint64_t next_request_ = 1;
  double start_seconds_ = 0;
  std::string died_in_setup_;
  std::map<std::string, AnalysisStats> setup_costs_;
  bool killed_from_outside_ = false;
  bool hung_ = false;
  bool became_ready_ = false;
  bool busy_ = false;
};

}  // namespace mathpool::detail
