// process_state.hpp: what a task may change in its worker process and the
// next task must not inherit: pending timers (alarm, setitimer, POSIX
// timers), the signal mask and dispositions, resource limits, and the child
// subreaper flag. Saved once when the worker is ready to serve, restored
// after tasks on the same schedule as the sweep of what a task started.
//
// Not thread-safe; the worker's main thread only.
#pragma once

#include <string>

namespace mathpool::detail {

// Threads of this process now (the entries of /proc/self/task; 1 when it
// cannot be read). A process with more than one is not forked: a lock another
// thread holds would stay locked in the child. In a ThreadSanitizer build the
// runtime's own background thread (started in a child after fork() and with
// a process's first pthread_create) is not counted.
int count_threads();
// In a child of fork(): closes the directory count_threads() kept open in
// the parent (its read position is shared with the parent's), unless a setup
// put another file at that number. A no-op in the process that opened it.
void release_inherited_task_dir();

class ProcessState {
 public:
  // Records the state as it is now (the worker's own, before any task).
  void save();
  // Puts back what a task changed. Returns an empty string, or why the
  // worker cannot go on (a hard limit lowered below its saved value, which
  // only root could raise again): the worker is then retired.
  // About 25 system calls, two of them reads of /proc text the kernel
  // formats (most of the cost).
  std::string restore();
  // The part of restore() that acts by itself, later: stops interval and
  // POSIX timers and drops a timer signal already pending. About 8 system
  // calls; what the rest of restore() puts back matters only when a signal
  // comes or a resource runs short.
  void stop_timers();

 private:
  bool saved_ = false;
};

}  // namespace mathpool::detail
