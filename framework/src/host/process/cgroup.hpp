// cgroup.hpp: a cgroup v2 per worker process, so that everything a worker's
// tasks start ends with the worker, however it dies. A process cannot leave
// its cgroup by setsid, double fork or reparenting (only by writing to
// cgroup files, which needs the rights to them), so killing the cgroup
// reaches daemons that the worker's own sweep misses when the worker is
// SIGKILLed. Not thread-safe; used by the pool's dispatcher thread only.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <utility>

namespace mathpool::detail {

// The cgroup of one process and of everything it starts; ending it kills them all.
class ProcessCgroup {
 public:
  ProcessCgroup() = default;  // none: the process is contained by its session and subreaper only
  explicit ProcessCgroup(std::string path) : path_(std::move(path)), owner_(getpid()) {}
  ProcessCgroup(ProcessCgroup&& other) noexcept
      : path_(std::exchange(other.path_, {})), owner_(other.owner_) {}
  ProcessCgroup& operator=(ProcessCgroup&& other) noexcept;
  ~ProcessCgroup() { end(); }

  bool active() const noexcept { return !path_.empty(); }
  const std::string& path() const noexcept { return path_; }
  // SIGKILLs every process in the cgroup and removes it (waiting briefly for
  // the killed to exit). Idempotent. In a forked child of the host program,
  // only forgets it: the cgroup is the parent's.
  void end();

 private:
  std::string path_;
  pid_t owner_ = 0;  // the process that made it
};

// One pool's cgroups: a directory below the host's own cgroup v2 directory,
// with a cgroup per worker (and one for the zygote template) inside.
class CgroupTree {
 public:
  // Creates the pool's directory when this system allows it and the
  // environment does not say MATHPOOL_CGROUPS=off; otherwise the tree is
  // inactive and reason() says why. Also ends and removes the directories of
  // pools whose host process is gone (mathpool-PID-N with no process PID).
  CgroupTree();
  ~CgroupTree() { remove(); }
  // Ends what is left in the pool's cgroups and removes its directory; the
  // tree is inactive from then on. Idempotent.
  void remove();
  CgroupTree(const CgroupTree&) = delete;
  CgroupTree& operator=(const CgroupTree&) = delete;

  bool active() const noexcept { return !root_.empty(); }
  const std::string& reason() const noexcept { return reason_; }
  // Moves `pid` (which must not have started anything yet) into a new cgroup
  // named `name`; an inactive ProcessCgroup when the tree is inactive or the move fails.
  ProcessCgroup adopt(pid_t pid, std::string_view name);

  // Why a pool in this process cannot contain its workers by cgroups, or
  // "" when it can (creates and removes a probe directory).
  static std::string unavailable_reason();

 private:
  std::string root_;    // the pool's directory, "" when inactive
  std::string reason_;  // why inactive
  pid_t owner_ = getpid();
};

}  // namespace mathpool::detail
