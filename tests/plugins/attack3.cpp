// attack3: analyses of the third round of attacks on the process model (one
// supervisor per pool) from outside, as a plugin author would write them
// (tests/framework/test_attack3.cpp). Setups that break things are chosen by
// the environment (MATHPOOL_A3_BREAK, MATHPOOL_A3_SLOW_MS), so a test turns on
// exactly one. Processes meant to be found later carry the name in `tag`.
// Not installed.
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <any>
#include <csignal>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <utility>

#include <mathpool/plugin.hpp>

namespace {

mathpool::Analysis analysis(std::string name, std::string description,
                            std::function<mathpool::Value(const mathpool::TaskContext&)> run) {
  mathpool::Analysis a;
  a.name = "a3." + name;
  a.version = "1.0.0";
  a.description = std::move(description);
  a.open_params = true;
  a.run = std::move(run);
  return a;
}

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

void sleep_ms(std::int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

[[noreturn]] void stay_named(const std::string& tag) {
  prctl(PR_SET_NAME, tag.c_str());
  for (;;) pause();
}

// This process's cgroup v2 directory ("" when there is none).
std::string own_cgroup() {
  std::string relative;
  std::ifstream membership("/proc/self/cgroup");
  for (std::string line; std::getline(membership, line);)
    if (line.rfind("0::", 0) == 0) relative = line.substr(3);
  if (relative.empty()) return "";
  std::ifstream mounts("/proc/self/mountinfo");
  for (std::string line; std::getline(mounts, line);) {
    const auto dash = line.find(" - cgroup2 ");
    if (dash == std::string::npos) continue;
    // id parent dev root mountpoint
    std::size_t at = 0;
    std::string fields[5];
    for (auto& field : fields) {
      const auto end = line.find(' ', at);
      field = line.substr(at, end - at);
      at = end + 1;
    }
    if (fields[3] != "/") continue;
    return fields[4] + relative;
  }
  return "";
}

}  // namespace

MATHPOOL_PLUGIN("attack3", "1.0.0") {
  registry.add(analysis("count", "Counts the tasks this process ran; returns its pid", [](const auto&) {
    static int count = 0;
    return mathpool::Value{{"count", ++count}, {"pid", getpid()}};
  }));
  registry.add(analysis("nap", "Sleeps `ms` milliseconds; named `tag` meanwhile when given", [](const auto& task) {
    const std::string tag = task.params().string("tag", "");
    char name[16] = {};
    if (!tag.empty()) {
      prctl(PR_GET_NAME, name);
      prctl(PR_SET_NAME, tag.c_str());
    }
    sleep_ms(task.params().integer("ms", 10));
    if (!tag.empty()) prctl(PR_SET_NAME, name);
    return mathpool::Value{{"pid", getpid()}};
  }));
  // A setup that takes its time (MATHPOOL_A3_SLOW_MS), as one that loads a
  // large table would.
  auto slow = analysis("slow", "Its setup sleeps MATHPOOL_A3_SLOW_MS milliseconds; tasks return ok",
                       [](const auto&) { return mathpool::Value{{"pid", getpid()}}; });
  slow.setup = []() -> std::any {
    const std::string ms = env("MATHPOOL_A3_SLOW_MS");
    if (!ms.empty()) sleep_ms(std::atoll(ms.c_str()));
    return {};
  };
  registry.add(std::move(slow));
  // A setup that does something to its process as MATHPOOL_A3_BREAK says.
  auto breaker = analysis(
      "breaker",
      "Its setup, as MATHPOOL_A3_BREAK says: close3_hang (closes fd 3, then sleeps MATHPOOL_A3_HANG_MS), "
      "sigchld_ign (ignores SIGCHLD), no_subreaper (turns off its process's subreaper flag), helper (starts a process named MATHPOOL_A3_TAG), reaper (a thread that waits for any child, forever), dlopen_thread (a thread that opens and closes a library, forever), atfork_dlopen_thread (the same, started by a fork handler), atfork_hidden_thread (a fork handler that, at its process's second fork, points every /proc directory descriptor at MATHPOOL_A3_DIR and starts a sleeping thread); tasks return ok",
      [](const auto&) { return mathpool::Value{{"pid", getpid()}}; });
  breaker.setup = []() -> std::any {
    const std::string how = env("MATHPOOL_A3_BREAK");
    // The same, only when the file MATHPOOL_A3_HANG_IF exists (a setup that
    // hangs on some later start, when a resource it waits for is busy).
    const std::string only_if = env("MATHPOOL_A3_HANG_IF");
    if (how == "close3_hang" && (only_if.empty() || ::access(only_if.c_str(), F_OK) == 0)) {
      ::close(3);
      const std::string ms = env("MATHPOOL_A3_HANG_MS");
      sleep_ms(ms.empty() ? 60000 : std::atoll(ms.c_str()));
    }
    if (how == "sigchld_ign") std::signal(SIGCHLD, SIG_IGN);
    if (how == "no_subreaper") prctl(PR_SET_CHILD_SUBREAPER, 0);
    // A helper process its tasks would talk to, named MATHPOOL_A3_TAG.
    if (how == "helper" && fork() == 0) stay_named(env("MATHPOOL_A3_TAG"));
    // A helper that, 300 ms later, starts a daemon of its own (double fork,
    // own session) named MATHPOOL_A3_TAG + "d", as a service manager would.
    if (how == "helper_daemon" && fork() == 0) {
      prctl(PR_SET_NAME, env("MATHPOOL_A3_TAG").c_str());
      sleep_ms(300);
      if (fork() == 0) {
        setsid();
        if (fork() == 0) stay_named(env("MATHPOOL_A3_TAG") + "d");
        _exit(0);
      }
      stay_named(env("MATHPOOL_A3_TAG"));
    }
    // A thread that opens and closes a library, forever (a plugin loader
    // polling for updates); the template forks workers meanwhile.
    if (how == "dlopen_thread") {
      std::thread([] {
        for (;;) {
          if (void* h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL)) dlclose(h);
        }
      }).detach();
    }
    // The same thread, started by a fork handler before the first fork
    // (after the template counted its threads at ready).
    if (how == "atfork_dlopen_thread") {
      pthread_atfork(
          [] {
            static bool started = false;
            if (std::exchange(started, true)) return;
            std::thread([] {
              for (;;) {
                if (void* h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL)) dlclose(h);
              }
            }).detach();
          },
          nullptr, nullptr);
    }
    // A fork handler that, at the second fork of the process it runs in (a
    // worker's second task under isolation: task), puts the directory
    // MATHPOOL_A3_DIR on every descriptor that is a /proc directory (the
    // worker's own /proc/self/task among them) and starts a thread that only
    // sleeps: the worker must still see that thread before its next fork.
    if (how == "atfork_hidden_thread") {
      pthread_atfork(
          [] {
            static pid_t pid = 0;
            static int forks = 0;
            if (pid != getpid()) pid = getpid(), forks = 0;
            if (++forks != 2) return;
            struct stat proc {};
            const int other = ::open(env("MATHPOOL_A3_DIR").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (other < 0 || ::stat("/proc", &proc) != 0) return;
            for (int fd = 4; fd < 1024; ++fd) {
              struct stat st {};
              if (fd != other && ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_dev == proc.st_dev)
                ::dup3(other, fd, O_CLOEXEC);
            }
            std::thread([] {
              for (;;) sleep_ms(1000);
            }).detach();
          },
          nullptr, nullptr);
    }
    if (how == "reaper") {
      std::thread([] {
        for (;;) {
          if (waitpid(-1, nullptr, __WALL) < 0) sleep_ms(1);
        }
      }).detach();
    }
    return {};
  };
  registry.add(std::move(breaker));
  registry.add(analysis("crash", "Raises `signal` (default SIGSEGV)", [](const auto& task) -> mathpool::Value {
    ::raise(int(task.params().integer("signal", SIGSEGV)));
    sleep_ms(1000);
    return nullptr;
  }));
  registry.add(analysis("pdeathsig_off", "Turns off its process's parent-death signal and returns",
                        [](const auto&) {
                          prctl(PR_SET_PDEATHSIG, 0);
                          return mathpool::Value{{"pid", getpid()}};
                        }));
  registry.add(analysis("traceme", "Asks to be traced by its parent (PTRACE_TRACEME) and returns", [](const auto&) {
    const long rc = ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    return mathpool::Value{{"pid", getpid()}, {"rc", rc}};
  }));
  registry.add(analysis("system", "Runs /bin/true in a child and waits for it, as system() would",
                        [](const auto&) -> mathpool::Value {
                          const pid_t child = fork();
                          if (child == 0) {
                            execl("/bin/true", "true", nullptr);
                            _exit(127);
                          }
                          int status = -1;
                          waitpid(child, &status, 0);
                          return mathpool::Value{{"pid", getpid()}, {"status", status}};
                        }));
  registry.add(analysis("subcgroup", "Creates an empty cgroup inside its own cgroup (needs root)", [](const auto&) {
    const std::string mine = own_cgroup();
    const std::string made = mine + "/a3-sub";
    const int rc = mine.empty() ? -1 : ::mkdir(made.c_str(), 0755);
    return mathpool::Value{{"cgroup", mine}, {"rc", rc}, {"pid", getpid()}};
  }));
  registry.add(analysis("escape_writer",
                        "Starts a sibling of its worker (clone(CLONE_PARENT)) named `tag` that writes `bytes` "
                        "bytes of garbage on fd 3 after `delay` ms, then waits; returns at once",
                        [](const auto& task) {
                          const auto delay = task.params().integer("delay", 30);
                          const auto bytes = task.params().integer("bytes", 16);
                          const std::string tag = task.params().string("tag", "a3-writer");
                          const long pid = ::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
                          if (pid == 0) {
                            prctl(PR_SET_NAME, tag.c_str());
                            sleep_ms(delay);
                            std::string garbage(std::size_t(bytes), '\xff');
                            [[maybe_unused]] auto n = ::write(3, garbage.data(), garbage.size());
                            stay_named(tag);
                          }
                          return mathpool::Value{{"pid", pid}};
                        }));
  registry.add(analysis("close3", "Appends a byte to `file` (counting its runs), closes fd 3 (its worker's channel), "
                                  "or with `dup2` puts /dev/null there; returns",
                        [](const auto& task) {
                          const std::string file = task.params().string("file", "");
                          if (!file.empty()) {
                            const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                            [[maybe_unused]] auto n = ::write(fd, "r", 1);
                            ::close(fd);
                          }
                          if (task.params().boolean("dup2", false)) {
                            const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
                            ::dup2(null, 3);
                            ::close(null);
                          } else {
                            ::close(3);
                          }
                          return mathpool::Value{{"pid", getpid()}};
                        }));
  registry.add(analysis("fork_writer", "Forks a child named `tag` that writes garbage on fd 3 after `delay` ms; "
                                       "returns at once",
                        [](const auto& task) {
                          const auto delay = task.params().integer("delay", 20);
                          const std::string tag = task.params().string("tag", "a3-fwriter");
                          const pid_t pid = fork();
                          if (pid == 0) {
                            prctl(PR_SET_NAME, tag.c_str());
                            sleep_ms(delay);
                            [[maybe_unused]] auto n = ::write(3, "\xff\xff\xff\xff\x06garbage", 12);
                            stay_named(tag);
                          }
                          return mathpool::Value{{"pid", pid}};
                        }));
  registry.add(analysis("runner", "Starts a process named `tag` that forks and lets its parent exit, again and "
                                  "again (its pid never stays the same); returns at once",
                        [](const auto& task) {
                          const std::string tag = task.params().string("tag", "a3-runner");
                          const pid_t first = fork();
                          if (first == 0) {
                            prctl(PR_SET_NAME, tag.c_str());
                            for (;;) {
                              const pid_t next = fork();
                              if (next > 0) _exit(0);  // the child goes on
                              if (next < 0) sleep_ms(1);
                              // a little work between forks
                              for (volatile int i = 0; i < 20000; ++i) {
                              }
                            }
                          }
                          return mathpool::Value{{"pid", first}};
                        }));
  registry.add(analysis("dlopen", "Opens and closes libm (dlopen), `n` times", [](const auto& task) {
    const auto n = task.params().integer("n", 1);
    int opened = 0;
    for (std::int64_t i = 0; i < n; ++i)
      if (void* h = dlopen("libbz2.so.1.0", RTLD_NOW | RTLD_LOCAL)) {
        ++opened;
        dlclose(h);
      }
    return mathpool::Value{{"opened", opened}, {"pid", getpid()}};
  }));
  registry.add(analysis("fd_hog", "Opens /dev/null until no descriptor is left (and keeps them), then starts a "
                                  "daemon named `tag` (double fork, own session); returns",
                        [](const auto& task) {
                          const std::string tag = task.params().string("tag", "a3-hog");
                          // The daemon first (fork needs no descriptor), told to go on by a pipe.
                          int go[2];
                          if (pipe(go) != 0) throw std::runtime_error("pipe");
                          const pid_t middle = fork();
                          if (middle == 0) {
                            setsid();
                            if (fork() == 0) {
                              char byte;
                              ::close(go[1]);
                              [[maybe_unused]] auto n = ::read(go[0], &byte, 1);
                              stay_named(tag);
                            }
                            _exit(0);
                          }
                          waitpid(middle, nullptr, 0);
                          ::close(go[0]);
                          int opened = 0;
                          while (::open("/dev/null", O_RDONLY) >= 0) ++opened;
                          ::close(go[1]);  // the daemon goes on
                          return mathpool::Value{{"opened", opened}, {"pid", getpid()}};
                        }));
  registry.add(analysis("daemon_then_die", "Starts a daemon named `tag` (double fork, own session), then "
                                           "SIGKILLs its own process", [](const auto& task) -> mathpool::Value {
    const std::string tag = task.params().string("tag", "a3-orphan");
    const pid_t middle = fork();
    if (middle == 0) {
      setsid();
      if (fork() == 0) stay_named(tag);
      _exit(0);
    }
    waitpid(middle, nullptr, 0);
    sleep_ms(50);
    ::raise(SIGKILL);
    return nullptr;
  }));
  registry.add(analysis("signal_parent", "Sends `signal` to its parent process (the pool's supervisor), then sleeps `ms`",
                        [](const auto& task) {
                          const pid_t parent = getppid();
                          ::kill(parent, int(task.params().integer("signal", SIGTERM)));
                          sleep_ms(task.params().integer("ms", 0));
                          return mathpool::Value{{"parent", parent}};
                        }));
}
