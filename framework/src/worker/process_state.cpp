#include "process_state.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
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

int count_threads() {
  DIR* tasks = opendir("/proc/self/task");
  if (!tasks) return 1;
  int count = 0;
  while (const dirent* entry = readdir(tasks))
    if (entry->d_name[0] != '.') ++count;
  closedir(tasks);
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

// POSIX timers have no "list" call; the kernel shows this process's in
// /proc/self/timers ("ID: 3" lines), and timer_delete takes the kernel's id.
void delete_posix_timers() {
  const int fd = ::open("/proc/self/timers", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char text[4096];
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return;
  text[n] = '\0';
  for (const char* at = text; (at = std::strstr(at, "ID: ")) != nullptr;) {
    at += 4;
    long id = 0;
    while (*at >= '0' && *at <= '9') id = id * 10 + (*at++ - '0');
    ::syscall(SYS_timer_delete, id);
  }
}

}  // namespace

void ProcessState::save() {
  for (int signal = 1; signal < kSignals; ++signal) sigaction(signal, nullptr, &saved_actions[std::size_t(signal)]);
  sigprocmask(SIG_SETMASK, nullptr, &saved_mask);
  for (int resource = 0; resource < RLIM_NLIMITS; ++resource)
    getrlimit(__rlimit_resource(resource), &saved_limits[std::size_t(resource)]);
  saved_ = true;
}

std::string ProcessState::restore() {
  if (!saved_) return {};
  // Limits first: what follows (and the sweep after us) opens files.
  std::string lost;
  for (int resource = 0; resource < RLIM_NLIMITS; ++resource) {
    rlimit now;
    const rlimit& saved = saved_limits[std::size_t(resource)];
    if (getrlimit(__rlimit_resource(resource), &now) != 0) continue;
    if (now.rlim_cur == saved.rlim_cur && now.rlim_max == saved.rlim_max) continue;
    if (setrlimit(__rlimit_resource(resource), &saved) != 0 && lost.empty())
      lost = fmt::format("a task lowered the hard limit of resource {} and it cannot be raised again", resource);
  }
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
  sigprocmask(SIG_SETMASK, &saved_mask, nullptr);
  for (int signal = 1; signal < kSignals; ++signal) {
    if (signal == SIGKILL || signal == SIGSTOP) continue;
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
