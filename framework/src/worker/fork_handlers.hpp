// fork_handlers.hpp: the fork handlers (pthread_atfork) registered in the
// worker, recorded as they are registered, so that the template's own clone
// of a worker (zygote.cpp) runs them exactly as fork() would.
//
// Every registration goes through __register_atfork (pthread_atfork is a
// static stub that calls it), which the worker program defines and exports:
// it records the handlers, then registers them with the C library as usual,
// so fork() itself is unchanged. A library that is closed drops its handlers
// in __cxa_finalize, which the worker program also defines, to drop them from
// the record too. Thread-safe.
#pragma once

namespace mathpool::detail {

// False when more handlers were registered than can be recorded; the
// template then forks its workers with fork().
bool fork_handlers_recorded() noexcept;
// Around a clone, as fork() runs them: prepare handlers in reverse order of
// registration before it; parent and child handlers in order after it.
void run_fork_prepare_handlers();
void run_fork_parent_handlers();
void run_fork_child_handlers();

}  // namespace mathpool::detail
