// worker_process.hpp: starting, stopping and reaping one worker process.
// Not thread-safe; used by the pool's dispatcher thread only.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "channel.hpp"

namespace mathpool::detail {

// The host's mapping of a worker's progress page (protocol.hpp). Owns the
// mapping and, until it has been handed to the worker, the memfd.
class ProgressMapping {
 public:
  // Creates a zeroed page; throws mathpool::Error when the system refuses.
  static ProgressMapping create();
  ProgressMapping() = default;
  ProgressMapping(ProgressMapping&& other) noexcept { *this = std::move(other); }
  ProgressMapping& operator=(ProgressMapping&& other) noexcept;
  ~ProgressMapping();

  const ProgressPage* page() const noexcept { return page_; }
  // Sends the page to the worker at the other end of `channel_fd` (its first
  // message); returns false when the worker is gone.
  bool hand_over(int channel_fd);

 private:
  int fd_ = -1;
  ProgressPage* page_ = nullptr;
};

struct SpawnedWorker {
  pid_t pid = -1;
  Channel channel;
  ProgressMapping progress;
};

// Starts `program` (the worker program, as a supervisor) in a session of its own (so its process group
// is its own and it has no controlling terminal), with one end of a
// private socket pair as its channel. No shell is involved. Throws
// mathpool::Error when the process cannot be started.
SpawnedWorker spawn_worker(const std::filesystem::path& program);

// A descriptor that becomes readable when `pid` ends (-1 when the system
// has none): deaths are seen from the process, not from its channel (which
// its children may hold open).
int open_pidfd(pid_t pid);

// Sends `signal` through the pidfd (no pid reuse can misdirect it), or to
// `pid` when there is no pidfd.
void send_signal(pid_t pid, int pidfd, int signal);

// Kills every process of the session `leader` leads (its workers and what
// its setups started, unless they made sessions of their own). Call only
// while the leader is an unreaped zombie of ours: that holds the session's
// number, so no other session can have it.
void kill_session(pid_t leader);
// True when no process (not even a zombie) has `pid`. For a dead session
// leader reaped by someone else: then no session but the one it led can have
// its number (a new one would need a leader with that pid), so
// kill_session() is still safe.
bool no_process_has_pid(pid_t pid);
// True when the process `pid` (a child of ours, not reaped) is on its way
// out by its own or another's doing: a zombie, exiting (PF_EXITING), or with
// SIGKILL pending. A process killed from outside closes its descriptors
// before it becomes a zombie; on a loaded machine the two can be far apart,
// and a SIGKILL of ours in between would make the outside kill look like ours.
bool process_is_ending(pid_t pid);

// Makes sure this process may open the descriptors a pool of `workers`
// needs (a channel and a pidfd each, a page while one starts, the
// supervisors'), besides those open now: raises the soft RLIMIT_NOFILE up to
// the hard one if it must. Throws mathpool::Error (start_failed) naming both
// numbers when the hard limit is too low.
void reserve_descriptors(int workers);

// The status a worker's death is judged by when its supervisor sent no
// report of it (the supervisor died or stopped answering). Not a status
// the kernel reports.
inline constexpr int kStatusUnknown = -1;

// "killed by signal 11 (SIGSEGV)" or "exited with status 3".
std::string describe_wait_status(int status);

// What a worker's wait status means, decided here and nowhere else.
struct ExitVerdict {
  bool out_of_memory = false;        // it exited with kWorkerExitOutOfMemory
  bool killed_from_outside = false;  // SIGKILL: a user or the OOM killer, never the worker's own bug
  std::string description;           // describe_wait_status()
};
ExitVerdict judge_exit(int status);


}  // namespace mathpool::detail
