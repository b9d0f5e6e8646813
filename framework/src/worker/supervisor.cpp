#include "supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "messages.hpp"
#include "process_state.hpp"
#include "process_tree.hpp"

extern char** environ;

namespace mathpool::detail {
namespace {

constexpr int kChannelFd = 3;
// Adopted processes are looked for after each worker's end and each fork,
// and every 100 ms while the host says tasks are in flight (watch).
constexpr auto kScanEvery = std::chrono::milliseconds(100);

class Supervisor {
 public:
  Supervisor(Channel& channel, const SupervisorMode& mode) : channel_(channel), mode_(mode) {}

  int run();

 private:
  void reap();
  void scan_children();
  void make_worker(std::uint64_t request);
  pid_t fork_worker(int worker_end, int host_end);
  pid_t spawn_worker(int worker_end, std::string& error);
  void end_everything();

  Channel& channel_;
  const SupervisorMode& mode_;
  int signals_ = -1;  // signalfd of SIGCHLD
  sigset_t previous_mask_{};
  std::set<pid_t> workers_;
  std::set<pid_t> spared_;  // started by the setups, before we began
};

void note_child(pid_t pid, void* set) { static_cast<std::set<pid_t>*>(set)->insert(pid); }

int Supervisor::run() {
  std::signal(SIGCHLD, SIG_DFL);  // a setup that ignored it would have the kernel reap our workers
  sigset_t child;
  sigemptyset(&child);
  sigaddset(&child, SIGCHLD);
  sigprocmask(SIG_BLOCK, &child, &previous_mask_);
  signals_ = signalfd(-1, &child, SFD_CLOEXEC | SFD_NONBLOCK);
  become_subreaper();  // again: a setup may have turned the flag off
  reap();  // the middle processes of what the setups daemonized
  for_each_child(note_child, &spared_);
  bool busy = false;
  auto last_scan = std::chrono::steady_clock::now();
  for (;;) {
    pollfd fds[2] = {{channel_.fd(), POLLIN, 0}, {signals_, POLLIN, 0}};
    const int ready = ::poll(fds, 2, busy ? int(kScanEvery.count()) : -1);
    if (ready < 0 && errno != EINTR) break;
    bool reaped = false;
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(signals_, &info, sizeof info) == sizeof info) {
      }
      reaped = true;
    }
    reap();
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      reaped = true;  // a fork request or a change of watch: look now
      const bool open = channel_.fill();
      bool stop = !open;
      try {
        while (auto frame = channel_.next_frame()) {
          if (frame->type == MessageType::exit) stop = (ExitMessage::decode(*frame), true);
          else if (frame->type == MessageType::fork)
            make_worker(ForkMessage::decode(*frame).request);
          else if (frame->type == MessageType::watch)
            busy = WatchMessage::decode(*frame).busy;
          else
            throw ProtocolError(fmt::format("unexpected message of type {}", int(frame->type)));
        }
      } catch (const std::exception&) {
        end_everything();
        return kWorkerExitProtocol;
      }
      if (stop) break;
    }
    const auto now = std::chrono::steady_clock::now();
    if (reaped || (busy && now - last_scan >= kScanEvery)) {
      scan_children();
      last_scan = now;
    }
  }
  end_everything();
  return kWorkerExitOk;
}

void Supervisor::reap() {
  int status = 0;
  for (pid_t pid; (pid = waitpid(-1, &status, WNOHANG | __WALL)) > 0;) {
    if (WIFSTOPPED(status)) {
      // A worker that asked to be traced (PTRACE_TRACEME) stops at its
      // signals for us, its parent: not an exit. Let it go on untraced.
      ::ptrace(PTRACE_DETACH, pid, nullptr, reinterpret_cast<void*>(std::intptr_t(WSTOPSIG(status) == SIGTRAP ? 0 : WSTOPSIG(status))));
      continue;
    }
    spared_.erase(pid);
    if (workers_.erase(pid) == 0) continue;
    // The host's only source of a worker's wait status; it waits for it.
    channel_.send_control(MessageType::exited, ExitedMessage{pid, status}.encode());
  }
}

struct ScanContext {
  const std::set<pid_t>* workers;
  const std::set<pid_t>* spared;
};

void kill_escaped(pid_t pid, void* context) {
  auto* known = static_cast<ScanContext*>(context);
  if (known->workers->count(pid) || known->spared->count(pid)) return;
  kill_tree(pid);  // adopted: it escaped a worker (or is a dead worker's orphan)
}

void Supervisor::scan_children() {
  ScanContext context{&workers_, &spared_};
  for_each_child(kill_escaped, &context);
}

void Supervisor::make_worker(std::uint64_t request) {
  auto fail = [&](const std::string& why) {
    channel_.send_control(MessageType::fork_failed, ForkFailedMessage{request, why}.encode());
  };
  int ends[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0)
    return fail(fmt::format("socketpair failed: {}", std::strerror(errno)));
  std::string error;
  // A template is forked only while it is single-threaded (checked before
  // and after: a fork handler, a signal handler may start a thread).
  int threads = mode_.serve_forked ? count_threads() : 1;
  pid_t pid = -1;
  if (threads == 1) {
    pid = mode_.serve_forked ? fork_worker(ends[1], ends[0]) : spawn_worker(ends[1], error);
    if (pid > 0 && mode_.serve_forked && (threads = count_threads()) > 1) {
      ::kill(pid, SIGKILL);  // forked with a thread running: it may hold a lock for good
      while (waitpid(pid, nullptr, __WALL) < 0 && errno == EINTR) {
      }
      pid = -1;
    }
  }
  ::close(ends[1]);
  if (threads > 1) {
    ::close(ends[0]);
    ForkFailedMessage refused{request, fmt::format("the template has {} threads running", threads), threads};
    channel_.send_control(MessageType::fork_failed, refused.encode());
    return;
  }
  if (pid < 0) {
    ::close(ends[0]);
    return fail(error.empty() ? fmt::format("fork failed: {}", std::strerror(errno)) : error);
  }
  workers_.insert(pid);
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    ::kill(pid, SIGKILL);
    ::close(ends[0]);
    return fail(fmt::format("pidfd_open failed: {}", std::strerror(errno)));
  }
  const int fds[2] = {ends[0], pidfd};
  channel_.send_control_with_fds(MessageType::forked, ForkedMessage{request, pid}.encode(), fds, 2);
  ::close(ends[0]);
  ::close(pidfd);
}

pid_t Supervisor::fork_worker(int worker_end, int host_end) {
  std::fflush(nullptr);  // no buffered output may be written twice
  const pid_t supervisor = getpid();
  const pid_t pid = fork();
  if (pid != 0) return pid;
  // The worker: its channel on fd 3, as in a spawned worker.
  ::close(signals_);
  ::close(host_end);
  sigprocmask(SIG_SETMASK, &previous_mask_, nullptr);
  channel_.close();
  if (dup2(worker_end, kChannelFd) != kChannelFd) _exit(kWorkerExitTemplateFailure);
  ::close(worker_end);
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with its supervisor
  if (getppid() != supervisor) _exit(kWorkerExitOk);
  Channel worker_channel(kChannelFd);
  _exit(mode_.serve_forked(worker_channel));
}

pid_t Supervisor::spawn_worker(int worker_end, std::string& error) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, worker_end, kChannelFd);
  posix_spawn_file_actions_addclosefrom_np(&actions, kChannelFd + 1);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigfillset(&defaults);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  // In our session (ended with us), in a process group of its own.
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const std::string channel = std::to_string(kChannelFd);
  const std::string parent = std::to_string(getpid());
  std::vector<char*> argv = {const_cast<char*>(mode_.program.c_str()), const_cast<char*>("--channel"),
                             const_cast<char*>(channel.c_str()),       const_cast<char*>("--host"),
                             const_cast<char*>(parent.c_str()),        nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, mode_.program.c_str(), &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (rc != 0) {
    error = fmt::format("cannot start worker program {}: {}", mode_.program, std::strerror(rc));
    return -1;
  }
  return pid;
}

void Supervisor::end_everything() {
  channel_.close();
  for (pid_t pid : workers_) ::kill(pid, SIGKILL);
  kill_descendants_of_self();
  while (waitpid(-1, nullptr, __WALL) > 0 || errno == EINTR) {
  }
}

}  // namespace

void become_subreaper() { prctl(PR_SET_CHILD_SUBREAPER, 1); }

int run_supervisor(Channel& channel, const SupervisorMode& mode) { return Supervisor(channel, mode).run(); }

}  // namespace mathpool::detail
