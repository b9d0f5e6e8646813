#include "zygote.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "../common/fd_passing.hpp"
#include "fork_handlers.hpp"

namespace mathpool::detail {
namespace {

// A forked worker's parent is the host from its first instruction (a
// sibling) or from when the middle process exits (double fork). Only then
// can it ask to die with the host.
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

// Where this thread's descriptor (pthread_self()) keeps its thread id, which
// fork() sets in the child (glibc points the kernel's CLONE_CHILD_SETTID at
// it): thread calls on pthread_self() (pthread_setaffinity_np,
// pthread_getcpuclockid, ...) act on that id. Found by trial: of the words
// in the descriptor that hold this thread's id, the one a forked child finds
// holding its own. Null when there is not exactly one.
pid_t* find_thread_id_slot() {
  auto* descriptor = reinterpret_cast<unsigned char*>(pthread_self());
  const pid_t self = gettid();
  constexpr int kScannedBytes = 1024;  // well inside the descriptor (about 2 KiB)
  int candidates[64];
  int count = 0;
  for (int offset = 0; offset + int(sizeof(pid_t)) <= kScannedBytes && count < 64; offset += sizeof(pid_t)) {
    pid_t value;
    std::memcpy(&value, descriptor + offset, sizeof value);
    if (value == self) candidates[count++] = offset;
  }
  if (count == 0) return nullptr;
  int answer[2];
  if (pipe2(answer, O_CLOEXEC) != 0) return nullptr;
  const pid_t probe = _Fork();  // a plain fork without the fork handlers: nothing of ours runs twice
  if (probe == 0) {
    std::uint64_t rewritten = 0;
    const pid_t me = gettid();
    for (int i = 0; i < count; ++i) {
      pid_t value;
      std::memcpy(&value, descriptor + candidates[i], sizeof value);
      if (value == me) rewritten |= std::uint64_t(1) << i;
    }
    [[maybe_unused]] auto written = ::write(answer[1], &rewritten, sizeof rewritten);
    _exit(0);
  }
  ::close(answer[1]);
  std::uint64_t rewritten = 0;
  const bool read = probe > 0 && read_retrying(answer[0], &rewritten, sizeof rewritten) == sizeof rewritten;
  ::close(answer[0]);
  if (probe > 0) {
    while (waitpid(probe, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (!read || __builtin_popcountll(rewritten) != 1) return nullptr;
  return reinterpret_cast<pid_t*>(descriptor + candidates[__builtin_ctzll(rewritten)]);
}

pid_t* thread_id_slot = nullptr;  // set by template_forks_siblings()

// A child of the template's parent (the host), not of the template: the
// host reaps it and reads its exit status without adopting anything. The
// raw system call does what glibc's fork() does around its clone that
// matters in a single-threaded process (see template_forks_siblings): the
// fork handlers, the child's thread id in its descriptor, and its robust
// mutex list (which the kernel does not carry into a child). What fork()
// also does, fresh locks that other threads held, no single-threaded
// process needs.
pid_t clone_sibling() {
  void* robust_list = nullptr;
  std::size_t robust_list_size = 0;
  ::syscall(SYS_get_robust_list, 0, &robust_list, &robust_list_size);
  run_fork_prepare_handlers();
  // Arguments (x86-64 and most others): flags, stack (0: a copy of this
  // one), parent's tid pointer, child's tid pointer, TLS.
  const auto pid = static_cast<pid_t>(
      ::syscall(SYS_clone, CLONE_PARENT | CLONE_CHILD_SETTID | SIGCHLD, nullptr, nullptr, thread_id_slot, nullptr));
  if (pid == 0) {
    if (robust_list) ::syscall(SYS_set_robust_list, robust_list, robust_list_size);
    run_fork_child_handlers();
    return 0;
  }
  run_fork_parent_handlers();
  return pid;
}

// The worker's end: the channel on fd 3 as in a spawned worker, then serve.
[[noreturn]] void become_worker(Channel& channel, int worker_end, pid_t host,
                                const std::function<int(Channel&)>& serve_worker) {
  const int channel_fd = channel.fd();
  channel.close();
  if (dup2(worker_end, channel_fd) != channel_fd) _exit(5);
  ::close(worker_end);
  bind_to_host(host);
  Channel worker_channel(channel_fd);
  _exit(serve_worker(worker_channel));
}

// Double fork (a template with other threads): the middle process exits at
// once and the worker is adopted by the host, a child subreaper meanwhile.
// Returns the worker's pid, or -1.
pid_t double_fork(Channel& channel, int ends[2], pid_t host, const std::function<int(Channel&)>& serve_worker) {
  int pid_pipe[2];
  if (pipe2(pid_pipe, O_CLOEXEC) != 0) return -1;
  const pid_t middle = fork();
  if (middle == 0) {
    const pid_t worker = fork();
    if (worker == 0) {
      ::close(pid_pipe[0]);
      ::close(pid_pipe[1]);
      ::close(ends[0]);
      become_worker(channel, ends[1], host, serve_worker);
    }
    [[maybe_unused]] auto written = ::write(pid_pipe[1], &worker, sizeof worker);
    _exit(worker > 0 ? 0 : 1);
  }
  ::close(pid_pipe[1]);
  pid_t worker = -1;
  if (middle < 0 || read_retrying(pid_pipe[0], &worker, sizeof worker) != sizeof worker) worker = -1;
  ::close(pid_pipe[0]);
  if (middle > 0) {
    int status;
    while (waitpid(middle, &status, 0) < 0 && errno == EINTR) {
    }
  }
  return worker > 0 ? worker : -1;
}

}  // namespace

bool template_forks_siblings() {
  DIR* tasks = opendir("/proc/self/task");
  if (!tasks) return false;
  int threads = 0;
  while (const dirent* entry = readdir(tasks))
    if (entry->d_name[0] != '.') ++threads;
  closedir(tasks);
  if (threads != 1 || !fork_handlers_recorded()) return false;
  thread_id_slot = find_thread_id_slot();
  return thread_id_slot != nullptr;
}

int run_template(Channel& channel, pid_t host, bool siblings, const std::function<int(Channel&)>& serve_worker) {
  for (;;) {
    char request = 0;
    const ssize_t n = read_retrying(channel.fd(), &request, 1);
    if (n <= 0) return 0;  // the host closed the channel: stop
    if (request != 'F') return 4;

    int ends[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) return 5;
    std::fflush(nullptr);  // no buffered output may be written twice

    pid_t worker = -1;
    if (siblings) {
      worker = clone_sibling();
      if (worker == 0) {
        ::close(ends[0]);
        become_worker(channel, ends[1], host, serve_worker);
      }
    } else {
      worker = double_fork(channel, ends, host, serve_worker);
    }
    ::close(ends[1]);
    const bool sent = worker > 0 && send_fd(channel.fd(), ends[0], worker);
    ::close(ends[0]);
    if (!sent) return worker > 0 ? 0 : 5;
  }
}

}  // namespace mathpool::detail
