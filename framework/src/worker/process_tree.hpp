// process_tree.hpp: ending the processes below this one. Every function here
// is async-signal-safe (system calls and stack buffers only), so a worker's
// fatal-signal handler and the supervisor use the same code.
#pragma once

#include <sys/types.h>

namespace mathpool::detail {

// SIGKILLs every descendant of `pid` (its children's children first, and the
// process groups they lead), then `pid` itself and its group. Depth is
// bounded (a chain deeper than that loses its bottom to our subreaper, which
// kills it as an orphan); breadth is not.
void kill_tree(pid_t pid);

// SIGKILLs every descendant of this process, deepest first, reaping the
// killed children between passes so that the kernel's children lists, which
// are served by position, never hold killed zombies in their way. Children
// listed in `spared` (count entries) are left alone, with their descendants.
void kill_descendants_of_self(const pid_t* spared = nullptr, int count = 0);

// Calls `visit(pid, context)` for each child of this process (all threads).
// Returns the number of children seen.
int for_each_child(void (*visit)(pid_t, void*), void* context);

}  // namespace mathpool::detail
