#include "process_state.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

namespace mathpool::detail {

namespace {

#if defined(__SANITIZE_THREAD__)
constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kThreadSanitizer = true;
#else
constexpr bool kThreadSanitizer = false;
#endif
#else
constexpr bool kThreadSanitizer = false;
#endif

}  // namespace

namespace {

// /proc/self/task kept open for the process that opened it: a task forked
// per request (isolation: task) asks before each fork, and opening the path
// again each time was 5 system calls and ~6 us of a ~450 us task (microbenchmark
// on the 2-core VM); a check, a rewind and one read are ~1.5 us.
int task_dir_fd = -1;
pid_t task_dir_pid = 0;
struct stat task_dir_identity {};  // of task_dir_fd when opened

// Whether task_dir_fd is still the directory it was opened as: a setup may
// have closed it, or put another file at that number (which must then be
// neither read nor rewound).
bool task_dir_is_ours() {
  struct stat now {};
  return task_dir_fd >= 0 && ::fstat(task_dir_fd, &now) == 0 && now.st_dev == task_dir_identity.st_dev &&
         now.st_ino == task_dir_identity.st_ino;
}

// The entries of the open directory, or -1 when it cannot be read.
int count_open_task_dir() {
  if (::lseek(task_dir_fd, 0, SEEK_SET) != 0) return -1;
  alignas(8) char buffer[8192];
  int count = 0;
  for (;;) {
    const long n = ::syscall(SYS_getdents64, task_dir_fd, buffer, sizeof buffer);
    if (n < 0) return -1;
    if (n == 0) break;
    for (long at = 0; at < n;) {
      const auto* entry = reinterpret_cast<const struct dirent64*>(buffer + at);
      if (entry->d_name[0] != '.') ++count;
      at += entry->d_reclen;
    }
    // procfs fills what fits: a read that left room was the whole directory.
    if (std::size_t(n) + 512 < sizeof buffer) break;
  }
  return count;
}

// Forgets the directory, closing it if that number is still it (another
// file a setup put there is left alone).
void drop_task_dir() {
  if (task_dir_is_ours()) ::close(task_dir_fd);
  task_dir_fd = -1;
}

}  // namespace

void release_inherited_task_dir() {
  // Inherited across fork(): our parent's directory, with a read position
  // shared with it.
  if (task_dir_pid != ::getpid()) drop_task_dir();
}

int count_threads() {
  const pid_t self = ::getpid();
  int count = -1;
  if (task_dir_pid == self && task_dir_is_ours()) count = count_open_task_dir();
  if (count < 0) {
    // First call in this process, ours was taken or cannot be read: open it again.
    drop_task_dir();
    task_dir_fd = ::open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    task_dir_pid = self;
    if (task_dir_fd < 0 || ::fstat(task_dir_fd, &task_dir_identity) != 0) return 1;
    count = count_open_task_dir();
    if (count < 0) return 1;
  }
  // TSan's background thread is there whenever a thread of ours is (it starts
  // with the first pthread_create), and in every child of a fork() made with
  // no other thread: one thread beyond the first is the runtime's.
  if (kThreadSanitizer && count > 1) --count;
  return count > 0 ? count : 1;
}

namespace {

constexpr int kSignals = 65;  // 1 .. 64
constexpr int kRestorerFlag = 0x04000000;  // SA_RESTORER: set by glibc itself, not part of a disposition
std::array<struct sigaction, kSignals> saved_actions;
sigset_t saved_mask;
std::array<rlimit, RLIM_NLIMITS> saved_limits;

// Only the masks' first 8 bytes (signals 1 .. 64) are compared: glibc's
// sigaction() copies its whole 128-byte sigset_t out of a buffer the kernel
// filled only 8 bytes of, so the rest differs from call to call (a memcmp of
// it all found every action changed, and each restore rewrote all 64: 125,000
// system calls for 8,192 tasks). Not sigismember() per signal: 4,096 calls a
// restore were 1.7% of a degree-16 sweep's whole CPU time (perf, 1 worker).
constexpr std::size_t kKernelMaskBytes = (kSignals - 1) / 8;
static_assert(sizeof(sigset_t) >= kKernelMaskBytes);

bool same_action(const struct sigaction& a, const struct sigaction& b) {
  return a.sa_handler == b.sa_handler && (a.sa_flags & ~kRestorerFlag) == (b.sa_flags & ~kRestorerFlag) &&
         std::memcmp(&a.sa_mask, &b.sa_mask, kKernelMaskBytes) == 0;
}

// Reads a small /proc file whole into `text` (NUL-terminated); false when it
// cannot (no descriptor free: a task used them up).
bool read_proc_file(const char* path, char* text, std::size_t size) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = ::read(fd, text, size - 1);
  ::close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  return true;
}

// POSIX timers have no "list" call; the kernel shows this process's in
// /proc/self/timers ("ID: 3" lines), and timer_delete takes the kernel's id.
void delete_posix_timers() {
  char text[4096];
  if (!read_proc_file("/proc/self/timers", text, sizeof text)) return;
  for (const char* at = text; (at = std::strstr(at, "ID: ")) != nullptr;) {
    at += 4;
    long id = 0;
    while (*at >= '0' && *at <= '9') id = id * 10 + (*at++ - '0');
    ::syscall(SYS_timer_delete, id);
  }
}

// The 64-bit signal set after `key` ("SigIgn:\t0000000000001000") in
// /proc/self/status; false when absent.
bool status_mask(const char* text, const char* key, std::uint64_t& mask) {
  const char* at = std::strstr(text, key);
  if (!at) return false;
  at += std::strlen(key);
  while (*at == ' ' || *at == '\t') ++at;
  mask = 0;
  int digits = 0;
  for (;; ++at, ++digits) {
    const char c = *at;
    const int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) break;
    mask = (mask << 4) | std::uint64_t(v);
  }
  return digits == 16;
}

// The limits in /proc/self/limits: a header line, then one line per resource
// in RLIMIT order, the name in 26 columns, then the soft and hard limits
// ("unlimited" or a number). False when the text is not that.
bool parse_limits(const char* text, std::array<rlimit, RLIM_NLIMITS>& limits) {
  const char* line = std::strchr(text, '\n');
  auto value = [](const char*& at, rlim_t& out) {
    while (*at == ' ') ++at;
    if (std::strncmp(at, "unlimited", 9) == 0) {
      out = RLIM_INFINITY;
      at += 9;
      return true;
    }
    if (*at < '0' || *at > '9') return false;
    out = 0;
    while (*at >= '0' && *at <= '9') out = out * 10 + rlim_t(*at++ - '0');
    return true;
  };
  for (std::size_t resource = 0; resource < limits.size(); ++resource) {
    if (!line) return false;
    const char* at = line + 1;
    line = std::strchr(at, '\n');
    if (!line || line - at < 27) return false;
    at += 26;
    if (!value(at, limits[resource].rlim_cur) || !value(at, limits[resource].rlim_max)) return false;
  }
  return true;
}

// Which signals the saved actions ignore and catch, as /proc/self/status
// shows them (bit N-1 for signal N).
std::uint64_t saved_ignored = 0, saved_caught = 0;

}  // namespace

void ProcessState::save() {
  for (int signal = 1; signal < kSignals; ++signal) sigaction(signal, nullptr, &saved_actions[std::size_t(signal)]);
  sigprocmask(SIG_SETMASK, nullptr, &saved_mask);
  for (int resource = 0; resource < RLIM_NLIMITS; ++resource)
    getrlimit(__rlimit_resource(resource), &saved_limits[std::size_t(resource)]);
  saved_ignored = saved_caught = 0;
  for (int signal = 1; signal < kSignals; ++signal) {
    const auto handler = saved_actions[std::size_t(signal)].sa_handler;
    if (handler == SIG_IGN) saved_ignored |= std::uint64_t(1) << (signal - 1);
    else if (handler != SIG_DFL) saved_caught |= std::uint64_t(1) << (signal - 1);
  }
  saved_ = true;
}

void ProcessState::stop_timers() {
  if (!saved_) return;
  itimerval off{};
  for (int timer : {ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF}) setitimer(__itimer_which(timer), &off, nullptr);
  delete_posix_timers();
  // A signal a timer raised just now, and now ignored or default: drop it.
  sigset_t pending;
  sigpending(&pending);
  for (int signal : {SIGALRM, SIGVTALRM, SIGPROF}) {
    if (!sigismember(&pending, signal)) continue;
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction previous;
    sigaction(signal, &ignore, &previous);  // discards the pending signal
    sigaction(signal, &previous, nullptr);
  }
}

std::string ProcessState::restore() {
  if (!saved_) return {};
  // Limits first: what follows (and the sweep after us) opens files.
  // Each is read from /proc in one go where it can be (a restore was about
  // 90 system calls, 64 of them sigaction: 12% of a degree-16 sweep's time
  // with its restore every 13 tasks, perf trace, 1 worker); one call each
  // where it cannot.
  std::string lost;
  char text[4096];
  std::array<rlimit, RLIM_NLIMITS> limits;
  const bool all_limits = read_proc_file("/proc/self/limits", text, sizeof text) && parse_limits(text, limits);
  for (int resource = 0; resource < RLIM_NLIMITS; ++resource) {
    rlimit& now = limits[std::size_t(resource)];
    const rlimit& saved = saved_limits[std::size_t(resource)];
    if (!all_limits && getrlimit(__rlimit_resource(resource), &now) != 0) continue;
    if (now.rlim_cur == saved.rlim_cur && now.rlim_max == saved.rlim_max) continue;
    if (setrlimit(__rlimit_resource(resource), &saved) != 0 && lost.empty())
      lost = fmt::format("a task lowered the hard limit of resource {} and it cannot be raised again", resource);
  }
  stop_timers();
  sigprocmask(SIG_SETMASK, &saved_mask, nullptr);
  // A signal ignored or left at its default then and now has the same
  // disposition (flags and mask matter only to a handler), so the status's
  // SigIgn and SigCgt masks show every change but one between two handlers,
  // and SIGCHLD's flags (SA_NOCLDWAIT would hide how children end): those are
  // read one by one.
  std::uint64_t ignored = 0, caught = 0;
  const bool masks = read_proc_file("/proc/self/status", text, sizeof text) && status_mask(text, "SigIgn:", ignored) &&
                     status_mask(text, "SigCgt:", caught);
  for (int signal = 1; signal < kSignals; ++signal) {
    if (signal == SIGKILL || signal == SIGSTOP) continue;
    const std::uint64_t bit = std::uint64_t(1) << (signal - 1);
    if (masks && signal != SIGCHLD && !(saved_caught & bit) && (ignored & bit) == (saved_ignored & bit) &&
        !(caught & bit))
      continue;
    struct sigaction now {};
    if (sigaction(signal, nullptr, &now) != 0) continue;
    if (!same_action(now, saved_actions[std::size_t(signal)])) sigaction(signal, &saved_actions[std::size_t(signal)], nullptr);
  }
  int subreaper = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, &subreaper) == 0 && subreaper == 0) prctl(PR_SET_CHILD_SUBREAPER, 1);
  // The worker dies with its supervisor, whatever a task did to that.
  int death_signal = 0;
  if (prctl(PR_GET_PDEATHSIG, &death_signal) == 0 && death_signal != SIGKILL) prctl(PR_SET_PDEATHSIG, SIGKILL);
  return lost;
}

}  // namespace mathpool::detail
