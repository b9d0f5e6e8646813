// zygote.hpp: the warm template that forks workers.
#pragma once

#include <sys/types.h>

#include <functional>

#include "../common/channel.hpp"

namespace mathpool::detail {

// Runs the template loop: for each fork request from the host it forks a
// worker that inherits the loaded plugins and their setup state
// (copy-on-write) and runs `serve_worker` on a fresh private channel, whose
// other end goes to the host with the worker's pid. Workers are double-forked
// so that they become children of the host (a child subreaper while it waits
// for the answer), which reaps them and reads their exit status. Returns the template's exit status.
int run_template(Channel& channel, pid_t host, const std::function<int(Channel&)>& serve_worker);

}  // namespace mathpool::detail
