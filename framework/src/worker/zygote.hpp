// zygote.hpp: the warm template that forks workers.
#pragma once

#include <sys/types.h>

#include <functional>

#include "../common/channel.hpp"

namespace mathpool::detail {

// Whether this process has one thread only, so that the template can clone
// its workers as the host's children (siblings of the template). Decided
// once, when the setups have run: after that only the template loop runs.
bool template_forks_siblings();

// Runs the template loop: for each fork request from the host it forks a
// worker that inherits the loaded plugins and their setup state
// (copy-on-write) and runs `serve_worker` on a fresh private channel, whose
// other end goes to the host with the worker's pid. Every worker is a child
// of the host, which reaps it and reads its exit status: cloned as the
// template's sibling when `siblings` (template_forks_siblings()), otherwise
// double-forked and adopted by the host (a child subreaper while it waits
// for the answer). Returns the template's exit status.
int run_template(Channel& channel, pid_t host, bool siblings, const std::function<int(Channel&)>& serve_worker);

}  // namespace mathpool::detail
