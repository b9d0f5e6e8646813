#include "zygote.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <thread>

#include "../common/fd_passing.hpp"

namespace mathpool::detail {
namespace {

// The worker's parent changes to the host when the middle process exits.
// Only then can it ask to die with the host.
void bind_to_host(pid_t host) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (getppid() != host && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != host) _exit(0);  // the host is gone (or never adopted us)
}

ssize_t read_retrying(int fd, void* data, std::size_t size) {
  ssize_t n;
  do n = ::read(fd, data, size);
  while (n < 0 && errno == EINTR);
  return n;
}

}  // namespace

int run_template(Channel& channel, pid_t host, const std::function<int(Channel&)>& serve_worker) {
  for (;;) {
    char request = 0;
    const ssize_t n = read_retrying(channel.fd(), &request, 1);
    if (n <= 0) return 0;  // the host closed the channel: stop
    if (request != 'F') return 4;

    int ends[2];
    int pid_pipe[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) return 5;
    if (pipe2(pid_pipe, O_CLOEXEC) != 0) return 5;
    std::fflush(nullptr);  // no buffered output may be written twice

    const pid_t middle = fork();
    if (middle == 0) {
      const pid_t worker = fork();
      if (worker == 0) {
        ::close(pid_pipe[0]);
        ::close(pid_pipe[1]);
        ::close(ends[0]);
        // Same descriptor layout as a spawned worker: the channel is fd 3.
        const int channel_fd = channel.fd();
        channel.close();
        if (dup2(ends[1], channel_fd) != channel_fd) _exit(5);
        ::close(ends[1]);
        bind_to_host(host);
        Channel worker_channel(channel_fd);
        _exit(serve_worker(worker_channel));
      }
      [[maybe_unused]] auto written = ::write(pid_pipe[1], &worker, sizeof worker);
      _exit(worker > 0 ? 0 : 1);
    }
    ::close(pid_pipe[1]);
    ::close(ends[1]);
    pid_t worker = -1;
    const bool got_pid = middle > 0 &&
                         read_retrying(pid_pipe[0], &worker, sizeof worker) == sizeof worker &&
                         worker > 0;
    ::close(pid_pipe[0]);
    if (middle > 0) {
      int status;
      while (waitpid(middle, &status, 0) < 0 && errno == EINTR) {
      }
    }
    const bool sent = got_pid && send_fd(channel.fd(), ends[0], worker);
    ::close(ends[0]);
    if (!sent) return got_pid ? 0 : 5;
  }
}

}  // namespace mathpool::detail
