#include "worker_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "fd_passing.hpp"
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

ProgressMapping ProgressMapping::create() {
  ProgressMapping mapping;
  mapping.fd_ = memfd_create("mathpool-progress", MFD_CLOEXEC);
  if (mapping.fd_ < 0 || ftruncate(mapping.fd_, kProgressPageBytes) != 0)
    throw Error(ErrorKind::crashed, fmt::format("cannot create a progress page: {}", strerror(errno)));
  void* p = mmap(nullptr, kProgressPageBytes, PROT_READ | PROT_WRITE, MAP_SHARED, mapping.fd_, 0);
  if (p == MAP_FAILED)
    throw Error(ErrorKind::crashed, fmt::format("cannot map a progress page: {}", strerror(errno)));
  mapping.page_ = new (p) ProgressPage();
  return mapping;
}

ProgressMapping& ProgressMapping::operator=(ProgressMapping&& other) noexcept {
  if (this != &other) {
    this->~ProgressMapping();
    fd_ = std::exchange(other.fd_, -1);
    page_ = std::exchange(other.page_, nullptr);
  }
  return *this;
}

ProgressMapping::~ProgressMapping() {
  if (page_) munmap(page_, kProgressPageBytes);
  if (fd_ >= 0) ::close(fd_);
  page_ = nullptr;
  fd_ = -1;
}

bool ProgressMapping::hand_over(int channel_fd) {
  const bool sent = send_fd(channel_fd, fd_, getpid());
  ::close(std::exchange(fd_, -1));
  return sent;
}


SpawnedWorker spawn_worker(const std::filesystem::path& program) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw Error(ErrorKind::crashed, fmt::format("socketpair failed: {}", strerror(errno)));
  const int host_end = move_high(fds[0]);
  const int child_end = move_high(fds[1]);

  const std::string path = program.string();
  const std::string channel = std::to_string(kChildChannelFd);
  const std::string host = std::to_string(getpid());
  // Symbols stay lazily bound (no LD_BIND_NOW): it would also make every
  // lazy dlopen() in a task bind at once, and fail on a library with an
  // unused missing function.
  std::vector<char*> argv = {const_cast<char*>(path.c_str()),
                             const_cast<char*>("--channel"), const_cast<char*>(channel.c_str()),
                             const_cast<char*>("--host"), const_cast<char*>(host.c_str()),
                             nullptr};
  if (::access(path.c_str(), X_OK) != 0) {
    const int error = errno;
    ::close(host_end);
    ::close(child_end);
    throw Error(ErrorKind::start_failed, fmt::format("cannot start worker program {}: {}", path, strerror(error)));
  }
  // fork() and execve(), not posix_spawn: glibc's posix_spawn waits (vfork)
  // until the child has exec'd, and a child stopped before that (SIGSTOP
  // from outside) would hold the dispatcher for good. Between the two, only
  // async-signal-safe calls: the host program may have threads.
  sigset_t none;
  sigemptyset(&none);
  const pid_t pid = fork();
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction by_default {};
    by_default.sa_handler = SIG_DFL;
    // A host program may ignore or catch these; the worker program sets its own.
    for (int signal : {SIGINT, SIGTERM, SIGPIPE, SIGCHLD}) sigaction(signal, &by_default, nullptr);
    // A session of its own: the terminal's Ctrl-C is the host's, and what
    // the supervisor starts can be ended with its process group.
    setsid();
    if (dup2(child_end, kChildChannelFd) != kChildChannelFd) _exit(127);
    ::syscall(SYS_close_range, kChildChannelFd + 1, ~0U, 0);
    execve(path.c_str(), argv.data(), environ);
    _exit(127);
  }
  const int error = errno;
  ::close(child_end);
  if (pid < 0) {
    ::close(host_end);
    throw Error(ErrorKind::start_failed, fmt::format("cannot start worker program {}: {}", path, strerror(error)));
  }
  SpawnedWorker worker{pid, Channel(host_end), ProgressMapping::create()};
  worker.progress.hand_over(worker.channel.fd());  // a worker gone already shows up at its handshake
  return worker;
}

int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

namespace {

// Reads /proc/PID/NAME (one read: the kernel makes such a file whole) into
// `text`, ending it with '\0'; false when it cannot.
template <std::size_t N>
bool read_proc(const char* pid, const char* name, char (&text)[N]) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%s/%s", pid, name);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = ::read(fd, text, N - 1);
  ::close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  return true;
}

// The session and process group of process `pid` from /proc/PID/stat;
// false when it is gone or a zombie.
bool session_of(const char* pid, pid_t& session, pid_t& group) {
  char text[512];
  if (!read_proc(pid, "stat", text)) return false;
  const char* rest = std::strrchr(text, ')');  // the name may hold spaces and parentheses
  char state = 0;
  int ppid = 0, pgrp = 0, sid = 0;
  if (!rest || std::sscanf(rest + 1, " %c %d %d %d", &state, &ppid, &pgrp, &sid) != 4 || state == 'Z') return false;
  session = pid_t(sid);
  group = pid_t(pgrp);
  return true;
}

}  // namespace

void reserve_descriptors(int workers) {
  int open_now = 0;
  if (DIR* fds = ::opendir("/proc/self/fd")) {
    while (const dirent* entry = ::readdir(fds)) open_now += entry->d_name[0] != '.';
    ::closedir(fds);
  }
  constexpr rlim_t kPerWorker = 3;  // channel, pidfd, and the page while it starts
  constexpr rlim_t kPerPool = 32;   // supervisors (current, old, probe), wake-up, cgroups, margin
  const rlim_t needed = rlim_t(open_now) + rlim_t(workers) * kPerWorker + kPerPool;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= needed) return;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed)
    throw Error(ErrorKind::start_failed,
                fmt::format("{} workers need about {} file descriptors (with the {} open now), but this process may "
                            "open only {} (RLIMIT_NOFILE, hard limit); raise it (ulimit -Hn) or use fewer workers",
                            workers, needed, open_now, limit.rlim_max));
  limit.rlim_cur = needed;
  ::setrlimit(RLIMIT_NOFILE, &limit);
}

void kill_session(pid_t leader) {
  if (leader <= 0) return;
  // What is killed may fork before it dies: passes until one finds nothing
  // new (a killed process stays listed until it is a zombie). Each member's
  // process group is killed too: the kernel delivers that to a child being
  // forked as well, so a chain of forks within a group ends.
  std::set<pid_t> killed;
  for (int pass = 0; pass < 64; ++pass) {
    DIR* proc = ::opendir("/proc");
    if (!proc) return;
    bool found_new = false;
    while (const dirent* entry = ::readdir(proc)) {
      if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
      const pid_t pid = pid_t(std::atoi(entry->d_name));
      pid_t session = 0, group = 0;
      if (pid == leader || !session_of(entry->d_name, session, group) || session != leader) continue;
      if (group != leader && group > 1) ::kill(-group, SIGKILL);  // a member holds its group's number
      ::kill(pid, SIGKILL);
      found_new = killed.insert(pid).second || found_new;
    }
    ::closedir(proc);
    if (!found_new) return;
  }
}

bool no_process_has_pid(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d", int(pid));
  return ::access(path, F_OK) != 0;
}

bool process_is_ending(pid_t pid) {
  char id[16], text[4096];
  std::snprintf(id, sizeof id, "%d", int(pid));
  // A child not reaped has its /proc entry: what cannot be read (no
  // descriptor left, say) says nothing, and "not known to be ending" is the
  // safe answer (the caller then kills it, which only risks a misjudged cause).
  if (!read_proc(id, "stat", text)) return false;
  // pid (comm) state ppid pgrp session tty_nr tpgid flags ...: the command
  // may hold anything, so fields count from its last ')'.
  const char* at = std::strrchr(text, ')');
  if (!at || at[1] == '\0') return false;
  const char state = at[2];
  if (state == 'Z' || state == 'X' || state == 'x') return true;
  unsigned long flags = 0;
  if (std::sscanf(at + 3, "%*d %*d %*d %*d %*d %lu", &flags) == 1 && (flags & 0x4))  // PF_EXITING
    return true;
  if (!read_proc(id, "status", text)) return false;
  constexpr unsigned long long kSigkill = 1ull << (SIGKILL - 1);
  for (const char* field : {"\nShdPnd:", "\nSigPnd:"})
    if (const char* line = std::strstr(text, field))
      if (std::strtoull(line + std::strlen(field), nullptr, 16) & kSigkill) return true;
  return false;
}

void send_signal(pid_t pid, int pidfd, int signal) {
  if (pidfd >= 0) {
    ::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0);
    return;
  }
  if (pid > 0) ::kill(pid, signal);
}

std::string describe_wait_status(int status) {
  if (status == kStatusUnknown) return "ended; its supervisor sent no exit status";
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    const char* name = sigabbrev_np(signal);
    return fmt::format("killed by signal {} (SIG{})", signal, name ? name : "?");
  }
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  return fmt::format("ended with wait status {}", status);
}

ExitVerdict judge_exit(int status) {
  ExitVerdict verdict;
  if (status == kStatusUnknown) {
    verdict.description = describe_wait_status(status);
    return verdict;
  }
  verdict.out_of_memory = WIFEXITED(status) && WEXITSTATUS(status) == kWorkerExitOutOfMemory;
  // SIGKILL and SIGTERM come from outside (a user, the OOM killer, a
  // shutdown), never from a worker's own bug; the host's own are told apart
  // by its callers.
  verdict.killed_from_outside = WIFSIGNALED(status) && (WTERMSIG(status) == SIGKILL || WTERMSIG(status) == SIGTERM);
  verdict.description = describe_wait_status(status);
  return verdict;
}

}  // namespace mathpool::detail
