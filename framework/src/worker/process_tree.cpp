#include "process_tree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

namespace mathpool::detail {
namespace {

constexpr int kMaxTreeDepth = 8;

// Writes "/proc/<process>/task[/<thread>[/<file>]]" into `out`.
char* proc_path(char* out, const char* process, const char* thread = nullptr, const char* file = nullptr) {
  char* end = stpcpy(stpcpy(stpcpy(out, "/proc/"), process), "/task");
  if (thread) end = stpcpy(stpcpy(end, "/"), thread);
  if (file) end = stpcpy(stpcpy(end, "/"), file);
  return out;
}

void decimal(char* out, std::size_t size, unsigned long n) {
  char* at = out + size;
  *--at = '\0';
  do *--at = char('0' + n % 10);
  while ((n /= 10) > 0);
  std::memmove(out, at, std::size_t(out + size - at));
}

// Calls visit(pid) for each pid in one thread's children file, read in
// pieces: a pid split between two reads is carried over.
template <typename Visit>
void read_children(const char* process, const char* thread, Visit&& visit) {
  char path[96];
  const int fd = ::open(proc_path(path, process, thread, "children"), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char text[1024];
  unsigned long pid = 0;
  for (ssize_t n; (n = ::read(fd, text, sizeof text)) > 0;) {
    for (ssize_t i = 0; i < n; ++i) {
      if (text[i] >= '0' && text[i] <= '9') {
        pid = pid * 10 + unsigned(text[i] - '0');
      } else if (pid != 0) {
        visit(pid_t(pid));
        pid = 0;
      }
    }
  }
  if (pid != 0) visit(pid_t(pid));
  ::close(fd);
}

template <typename Visit>
void for_each_thread(const char* process, Visit&& visit) {
  char path[64];
  const int tasks = ::open(proc_path(path, process), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (tasks < 0) return;
  alignas(dirent64) char entries[1024];
  for (ssize_t n; (n = getdents64(tasks, entries, sizeof entries)) > 0;) {
    for (ssize_t offset = 0; offset < n;) {
      const auto* entry = reinterpret_cast<const dirent64*>(entries + offset);
      offset += entry->d_reclen;
      if (entry->d_name[0] != '.') visit(entry->d_name);
    }
  }
  ::close(tasks);
}

void kill_below(pid_t pid, int depth) {
  if (depth >= kMaxTreeDepth) return;
  char process[24];
  decimal(process, sizeof process, unsigned(pid));
  for_each_thread(process, [&](const char* thread) {
    read_children(process, thread, [&](pid_t child) {
      kill_below(child, depth + 1);
      ::kill(-child, SIGKILL);
      ::kill(child, SIGKILL);
    });
  });
}

bool spared_pid(pid_t pid, const pid_t* spared, int count) {
  for (int i = 0; i < count; ++i)
    if (spared[i] == pid) return true;
  return false;
}

}  // namespace

void kill_tree(pid_t pid) {
  kill_below(pid, 0);
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
}

void kill_descendants_of_self(const pid_t* spared, int count) {
  // Each pass kills what the lists show, then reaps it: a killed child stays
  // listed until it is reaped. Orphans of what we kill come to us (we are
  // their subreaper) and show up in the next pass.
  constexpr int kMaxPasses = 64;
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    int killed = 0;
    for_each_thread("self", [&](const char* thread) {
      read_children("self", thread, [&](pid_t child) {
        if (spared_pid(child, spared, count)) return;
        kill_tree(child);
        ++killed;
      });
    });
    int reaped = 0;
    for (pid_t pid; (pid = waitpid(-1, nullptr, WNOHANG | __WALL)) > 0;)
      if (!spared_pid(pid, spared, count)) ++reaped;
    if (killed == 0) return;
    if (reaped == 0) {
      // Killed but not dead yet: wait a little for the first of them.
      timespec pause{0, 100000};
      nanosleep(&pause, nullptr);
    }
  }
}

int for_each_child(void (*visit)(pid_t, void*), void* context) {
  int seen = 0;
  for_each_thread("self", [&](const char* thread) {
    read_children("self", thread, [&](pid_t child) {
      ++seen;
      visit(child, context);
    });
  });
  return seen;
}

}  // namespace mathpool::detail
