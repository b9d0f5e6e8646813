// supervisor.hpp: the one process per pool that makes workers, is their
// parent, reaps them and reports their exits (protocol.hpp, process model).
// In zygote mode it is the warm template: workers are made with glibc's own
// fork(), so every fork handler runs. In spawn mode it loads no plugins and
// starts each worker with posix_spawn.
#pragma once

#include <functional>
#include <string>

#include "channel.hpp"

namespace mathpool::detail {

struct SupervisorMode {
  // Zygote: runs in each forked worker, on its own channel; returns its exit status.
  std::function<int(Channel&)> serve_forked;
  // Spawn (when serve_forked is empty): the worker program to start.
  std::string program;
};

// Call first thing in a process that will supervise: it becomes the child
// subreaper of everything below it, so what its setups start and what
// escapes a worker comes to it.
void become_subreaper();

// Serves fork requests from the host on `channel` and reports each worker's
// exit, until the host closes the channel (or says exit). Children that were
// there when it began (started by setups) live as long as it does; any other
// process it adopts escaped a worker and is killed. On return every process
// below it has been killed and reaped. Returns the process's exit status.
int run_supervisor(Channel& channel, const SupervisorMode& mode);

}  // namespace mathpool::detail
