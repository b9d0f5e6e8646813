// worker_process.hpp: starting, stopping and reaping one worker process.
// Not thread-safe; used by the pool's dispatcher thread only.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "../common/channel.hpp"

namespace mathpool::detail {

struct SpawnedWorker {
  pid_t pid = -1;
  Channel channel;
};

// Starts `program` as a worker in its own process group, with one end of a
// private socket pair as its channel. No shell is involved. Throws
// mathpool::Error when the process cannot be started.
SpawnedWorker spawn_worker(const std::filesystem::path& program);

// Kills `pid` with SIGKILL and waits for it; returns the wait status.
int kill_and_reap(pid_t pid);

// "killed by signal 11 (SIGSEGV)" or "exited with status 3".
std::string describe_wait_status(int status);


}  // namespace mathpool::detail
