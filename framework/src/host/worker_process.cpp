#include "worker_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "mathpool/error.hpp"

extern char** environ;

namespace mathpool::detail {
namespace {

constexpr int kChildChannelFd = 3;

// Moves `fd` above the standard descriptors and the channel slot, close-on-exec.
int move_high(int fd) {
  if (fd > kChildChannelFd) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, kChildChannelFd + 1);
  ::close(fd);
  return moved;
}

}  // namespace

SpawnedWorker spawn_worker(const std::filesystem::path& program) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw Error(ErrorKind::crashed, fmt::format("socketpair failed: {}", strerror(errno)));
  const int host_end = move_high(fds[0]);
  const int child_end = move_high(fds[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_end, kChildChannelFd);
  posix_spawn_file_actions_addclosefrom_np(&actions, kChildChannelFd + 1);

  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setpgroup(&attributes, 0);  // own group: the terminal's Ctrl-C is the host's
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  const std::string path = program.string();
  const std::string channel = std::to_string(kChildChannelFd);
  const std::string host = std::to_string(getpid());
  std::vector<char*> argv = {const_cast<char*>(path.c_str()),
                             const_cast<char*>("--channel"), const_cast<char*>(channel.c_str()),
                             const_cast<char*>("--host"), const_cast<char*>(host.c_str()),
                             nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, path.c_str(), &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(child_end);
  if (rc != 0) {
    ::close(host_end);
    throw Error(ErrorKind::crashed,
                fmt::format("cannot start worker program {}: {}", path, strerror(rc)));
  }
  return SpawnedWorker{pid, Channel(host_end)};
}

int kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

std::string describe_wait_status(int status) {
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    const char* name = sigabbrev_np(signal);
    return fmt::format("killed by signal {} (SIG{})", signal, name ? name : "?");
  }
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  return fmt::format("ended with wait status {}", status);
}

}  // namespace mathpool::detail
