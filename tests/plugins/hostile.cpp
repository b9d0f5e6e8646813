// hostile: analyses that attack the pool the way a careless or malicious
// plugin would (stray children, daemons, terminal reads, signals to the
// whole group, forged channel frames), so the tests can prove each is
// contained. Processes they leave carry the name given in `tag` (at most 15
// characters), so a test can look for exactly its own. Not installed.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <thread>

#include <mathpool/plugin.hpp>

namespace {

int task_count = 0;  // per process: grows under isolation: worker, 1 under isolation: task

mathpool::Analysis analysis(std::string name, std::string description,
                            std::function<mathpool::Value(const mathpool::TaskContext&)> run) {
  mathpool::Analysis a;
  a.name = "hostile." + name;
  a.version = "1.0.0";
  a.description = std::move(description);
  a.open_params = true;
  a.run = std::move(run);
  return a;
}

// Names this process (as seen in /proc/PID/comm) and sleeps until killed.
[[noreturn]] void linger(const std::string& tag) {
  prctl(PR_SET_NAME, tag.c_str());
  for (;;) pause();
}

// Names this process and sleeps `seconds`, then exits.
[[noreturn]] void linger_for(const std::string& tag, unsigned seconds) {
  prctl(PR_SET_NAME, tag.c_str());
  sleep(seconds);
  _exit(0);
}

std::string tag_of(const mathpool::TaskContext& task) { return task.params().string("tag", "hostile"); }

// A setup that takes MATHPOOL_HOSTILE_SETUP_MS milliseconds, leaves a thread
// running (MATHPOOL_HOSTILE_SETUP_THREAD, as a thread pool would), or leaves
// a child and then crashes, when the environment asks for it (so the plugin
// stays usable by every other test).
std::any hostile_setup() {
  if (std::getenv("MATHPOOL_HOSTILE_SETUP_THREAD")) std::thread([] {
      for (;;) pause();
    }).detach();
  if (const char* ms = std::getenv("MATHPOOL_HOSTILE_SETUP_MS")) usleep(useconds_t(std::atoi(ms)) * 1000);
  // daemon(): the process that ran the setup exits with status 0; its copy,
  // named MATHPOOL_HOSTILE_SETUP_DAEMON, goes on as the worker or template.
  if (const char* tag = std::getenv("MATHPOOL_HOSTILE_SETUP_DAEMON")) {
    if (daemon(1, 1) == 0) prctl(PR_SET_NAME, tag);
  }
  if (const char* tag = std::getenv("MATHPOOL_HOSTILE_SETUP_CRASH")) {
    if (fork() == 0) linger(tag);
    ::raise(SIGSEGV);
  }
  return {};
}

void append_nested_arrays(std::string& out, int depth) {
  out.append(std::size_t(depth), char(0x91));  // fixarray of one element, nested
  out.push_back(char(0xc0));                   // nil at the bottom
}

void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}

// Double-forks a daemon in a session of its own that lingers 30 s, as a
// service started by a task would; returns once the middle process is gone.
// The middle process writes the daemon's pid to `pidfile` when one is given.
void start_daemon(const std::string& tag, const std::string& pidfile = "") {
  const pid_t child = fork();
  if (child == 0) {
    setsid();
    const pid_t daemon = fork();
    if (daemon == 0) linger_for(tag, 30);
    if (!pidfile.empty()) {
      const std::string text = std::to_string(daemon);
      const int fd = ::open(pidfile.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      [[maybe_unused]] auto written = ::write(fd, text.data(), text.size());
      ::close(fd);
    }
    _exit(0);
  }
  waitpid(child, nullptr, 0);
}

// For the attack tests (tests/framework/test_attack.cpp): a setup that, as
// libraries do, registers a fork handler to re-seed its generator in every
// child process; and, when the environment asks for it, leaves partial
// output in stdout's buffer (MATHPOOL_HOSTILE_SETUP_PRINT) or ignores
// SIGCHLD (MATHPOOL_HOSTILE_SETUP_IGNORE_SIGCHLD), as a careless plugin
// that does not want zombies would.
pid_t setup_pid = 0;
pid_t atfork_child_pid = 0;
std::mt19937_64 generator;

void reseed_in_child() {
  atfork_child_pid = getpid();
  std::random_device device;
  generator.seed((std::uint64_t(device()) << 32) ^ device() ^ std::uint64_t(getpid()));
}

// A process-shared robust mutex in memory every process forked from the
// setup's shares (a cross-worker cache's lock, say): when its holder dies,
// the next locker gets EOWNERDEAD instead of waiting forever.
pthread_mutex_t* shared_lock = nullptr;

std::any attack_setup() {
  if (setup_pid == 0) pthread_atfork(nullptr, nullptr, reseed_in_child);
  if (!shared_lock) {
    void* memory = mmap(nullptr, sizeof(pthread_mutex_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory != MAP_FAILED) {
      pthread_mutexattr_t attributes;
      pthread_mutexattr_init(&attributes);
      pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
      pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
      shared_lock = static_cast<pthread_mutex_t*>(memory);
      pthread_mutex_init(shared_lock, &attributes);
    }
  }
  setup_pid = getpid();
  std::random_device device;
  generator.seed((std::uint64_t(device()) << 32) ^ device());
  if (const char* text = std::getenv("MATHPOOL_HOSTILE_SETUP_PRINT")) std::printf("%s", text);
  if (std::getenv("MATHPOOL_HOSTILE_SETUP_IGNORE_SIGCHLD")) ::signal(SIGCHLD, SIG_IGN);
  return {};
}

int cpu_count_of_this_process() {
  cpu_set_t set;
  CPU_ZERO(&set);
  return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
}

// For tests/framework/test_attack2.cpp: a setup that, when the environment
// names it (MATHPOOL_HOSTILE_ATFORK_LIB), opens a library with fork handlers,
// closes it and opens it again, as a plugin probing for an optional
// dependency and then using it would.
using LibCounter = int (*)();
LibCounter lib_child_runs = nullptr;
LibCounter lib_prepare_runs = nullptr;
LibCounter lib_lock_failures = nullptr;
pid_t reload_setup_pid = 0;
std::string reload_error;

std::any reload_setup() {
  reload_setup_pid = getpid();
  const char* file = std::getenv("MATHPOOL_HOSTILE_ATFORK_LIB");
  if (!file) return {};
  const int times = std::getenv("MATHPOOL_HOSTILE_ATFORK_TIMES") ? std::atoi(std::getenv("MATHPOOL_HOSTILE_ATFORK_TIMES")) : 2;
  void* handle = nullptr;
  for (int i = 0; i < times; ++i) {
    if (handle) dlclose(handle);
    handle = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* why = dlerror();
      reload_error = why ? why : "dlopen failed";
      return {};
    }
  }
  lib_child_runs = reinterpret_cast<LibCounter>(dlsym(handle, "atfork_lib_child_runs"));
  lib_prepare_runs = reinterpret_cast<LibCounter>(dlsym(handle, "atfork_lib_prepare_runs"));
  lib_lock_failures = reinterpret_cast<LibCounter>(dlsym(handle, "atfork_lib_lock_failures"));
  return {};
}

// A helper (named `tag`p) that starts `n` children, each in a session of its
// own (named `tag`), and reaps whichever of them ends, as a shell running
// background jobs and `wait` does. Returns once all are in their sessions.
void start_fan(const std::string& tag, int n) {
  int ready[2];
  if (pipe(ready) != 0) return;
  if (fork() == 0) {
    ::close(ready[0]);
    prctl(PR_SET_NAME, (tag + "p").substr(0, 15).c_str());
    for (int i = 0; i < n; ++i) {
      if (fork() == 0) {
        setsid();
        prctl(PR_SET_NAME, tag.c_str());  // named before the task goes on
        ::close(ready[1]);
        linger(tag);
      }
    }
    ::close(ready[1]);
    for (;;)
      if (waitpid(-1, nullptr, 0) < 0 && errno == ECHILD) pause();
  }
  ::close(ready[1]);
  char byte;
  while (::read(ready[0], &byte, 1) > 0) {
  }
  ::close(ready[0]);
}

}  // namespace

MATHPOOL_PLUGIN("hostile", "1.0.0") {
  auto system_sleep = analysis("system_sleep", "Runs `exec sleep SECONDS` through std::system", [](const auto& task) {
    const std::string seconds(task.params().string("seconds", "15"));
    const int rc = std::system(("exec sleep " + seconds).c_str());
    return mathpool::Value{{"rc", rc}};
  });
  system_sleep.setup = hostile_setup;
  registry.add(system_sleep);

  registry.add(analysis("fork_then_segv", "Forks a child that sleeps forever, then raises SIGSEGV",
                        [](const auto& task) -> mathpool::Value {
                          const std::string tag = tag_of(task);
                          if (fork() == 0) linger(tag);
                          ::raise(SIGSEGV);
                          return mathpool::Value{{"survived", true}};
                        }));
  registry.add(analysis("daemon", "Double-forks a daemon (setsid) that sleeps 30 s; returns at once",
                        [](const auto& task) {
                          start_daemon(tag_of(task));
                          return mathpool::Value{{"pid", getpid()}};
                        }));
  registry.add(analysis("daemon_then", "Starts a daemon like hostile.daemon (its pid written to `pidfile` if "
                        "given), then raises SIGSEGV (then: segv), SIGKILLs its own process (then: sigkill), "
                        "or sleeps `ms` milliseconds (then: hang; then: hang_deaf, with SIGTERM blocked)",
                        [](const auto& task) {
                          start_daemon(tag_of(task), std::string(task.params().string("pidfile", "")));
                          const std::string then(task.params().string("then", "segv"));
                          if (then == "segv") ::raise(SIGSEGV);
                          if (then == "sigkill") ::kill(getpid(), SIGKILL);
                          if (then == "hang_deaf") {
                            sigset_t term;
                            sigemptyset(&term);
                            sigaddset(&term, SIGTERM);
                            sigprocmask(SIG_BLOCK, &term, nullptr);
                          }
                          usleep(useconds_t(task.params().integer("ms", 10000) * 1000));
                          return mathpool::Value{{"pid", getpid()}};
                        }));
  registry.add(analysis("grandchild", "Leaves a grandchild that exits quickly", [](const auto&) {
    const pid_t child = fork();
    if (child == 0) {
      if (fork() == 0) {
        usleep(1000);
        _exit(0);
      }
      _exit(0);
    }
    waitpid(child, nullptr, 0);
    return mathpool::Value{{"pid", getpid()}};
  }));
  registry.add(analysis("read_stdin", "Reads standard input and tries the controlling terminal", [](const auto&) {
    char buffer[64];
    const ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    const int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
    ssize_t from_tty = -1;
    if (tty >= 0) {
      from_tty = ::read(tty, buffer, sizeof buffer);
      ::close(tty);
    }
    return mathpool::Value{{"stdin_bytes", n}, {"tty_opened", tty >= 0}, {"tty_bytes", from_tty}};
  }));
  registry.add(analysis("kill_group", "Sends SIGKILL to its whole process group", [](const auto&) {
    ::kill(0, SIGKILL);
    return mathpool::Value{{"survived", true}};
  }));
  registry.add(analysis("deep_value", "Writes a result frame with a `depth`-deep MessagePack value to fd 3",
                        [](const auto& task) {
                          std::string body;
                          put_le(body, task.params().integer("id", 1), 8);  // id
                          put_le(body, 0, 8);                               // seconds
                          body.push_back(0);                                // outcome: ok
                          body.push_back(0);                                // flags
                          append_nested_arrays(body, int(task.params().integer("depth", 50000)));
                          std::string frame;
                          put_le(frame, body.size() + 1, 4);
                          frame.push_back(6);  // result
                          frame += body;
                          const ssize_t written = ::write(3, frame.data(), frame.size());
                          return mathpool::Value{{"written", written}};
                        }));
  registry.add(analysis("forge_frame", "Writes a frame header claiming `length` bytes of type `type` to fd 3",
                        [](const auto& task) {
                          std::string frame;
                          put_le(frame, std::uint64_t(task.params().integer("length", 0xfffffff0)), 4);
                          frame.push_back(char(task.params().integer("type", 6)));
                          frame.append(16, '\x7f');
                          const ssize_t written = ::write(3, frame.data(), frame.size());
                          return mathpool::Value{{"written", written}};
                        }));
  registry.add(analysis("count", "Counts the tasks this process has run", [](const auto&) {
    return mathpool::Value{{"count", ++task_count}, {"pid", getpid()}};
  }));
  registry.add(analysis("nap", "Sleeps for `ms` milliseconds", [](const auto& task) {
    usleep(useconds_t(task.params().integer("ms", 10) * 1000));
    return mathpool::Value{{"pid", getpid()}};
  }));
  registry.add(analysis("segv", "Raises SIGSEGV", [](const auto&) -> mathpool::Value {
    ::raise(SIGSEGV);
    return mathpool::Value{{"survived", true}};
  }));

  auto forked = analysis("fork_handlers", "Reports which process ran the setup, in which the fork handler "
                         "the setup registered last ran, and a draw of the generator it re-seeds there",
                         [](const auto&) {
                           return mathpool::Value{{"pid", getpid()},
                                                  {"setup_pid", setup_pid},
                                                  {"atfork_pid", atfork_child_pid},
                                                  {"draw", std::int64_t(generator() >> 1)}};
                         });
  forked.setup = attack_setup;
  registry.add(forked);
  registry.add(analysis("own_thread", "Reads its thread's CPU clock through pthread_getcpuclockid(pthread_self()); "
                        "with pin: true, binds its own thread to CPU 0 with pthread_setaffinity_np(pthread_self())",
                        [](const auto& task) {
                          clockid_t clock;
                          timespec now{};
                          const int got_clock = pthread_getcpuclockid(pthread_self(), &clock);
                          const bool clock_ok = got_clock == 0 && clock_gettime(clock, &now) == 0;
                          int pinned = -1;
                          if (task.params().boolean("pin", false)) {
                            cpu_set_t one;
                            CPU_ZERO(&one);
                            CPU_SET(0, &one);
                            pinned = pthread_setaffinity_np(pthread_self(), sizeof one, &one);
                          }
                          return mathpool::Value{{"pid", getpid()},
                                                 {"clock_ok", clock_ok},
                                                 {"pin_rc", pinned},
                                                 {"cpus", cpu_count_of_this_process()}};
                        }));
  registry.add(analysis("print_flush", "Prints a line to stdout and flushes it", [](const auto&) {
    std::printf("task %d\n", int(getpid()));
    std::fflush(stdout);
    return mathpool::Value{{"pid", getpid()}};
  }));
  registry.add(analysis("robust_lock_then_segv", "Locks the setup's shared robust mutex, then raises SIGSEGV",
                        [](const auto&) -> mathpool::Value {
                          if (!shared_lock) return mathpool::Value{{"error", "no shared lock (setup not run)"}};
                          pthread_mutex_lock(shared_lock);
                          ::raise(SIGSEGV);
                          return mathpool::Value{{"survived", true}};
                        }));
  registry.add(analysis("robust_lock", "Locks the setup's shared robust mutex (giving up after `ms`); "
                        "returns pthread_mutex_timedlock's code (EOWNERDEAD: its last holder died)",
                        [](const auto& task) -> mathpool::Value {
                          if (!shared_lock) return mathpool::Value{{"error", "no shared lock (setup not run)"}};
                          timespec until{};
                          clock_gettime(CLOCK_REALTIME, &until);
                          const std::int64_t ms = task.params().integer("ms", 2000);
                          until.tv_sec += time_t(ms / 1000);
                          until.tv_nsec += long(ms % 1000) * 1000000;
                          if (until.tv_nsec >= 1000000000) until.tv_sec += 1, until.tv_nsec -= 1000000000;
                          const int rc = pthread_mutex_timedlock(shared_lock, &until);
                          if (rc == EOWNERDEAD) pthread_mutex_consistent(shared_lock);
                          if (rc == 0 || rc == EOWNERDEAD) pthread_mutex_unlock(shared_lock);
                          return mathpool::Value{{"rc", rc}, {"eownerdead", EOWNERDEAD}, {"etimedout", ETIMEDOUT}};
                        }));
  registry.add(analysis("nested_session_then", "Forks a child that stays (named `tag`c) and starts a grandchild "
                        "in a session of its own (named `tag`); then raises SIGSEGV (then: segv), sleeps `ms` "
                        "milliseconds (then: hang) or returns (then: return)",
                        [](const auto& task) {
                          const std::string tag = tag_of(task);
                          int ready[2];
                          if (pipe(ready) != 0) return mathpool::Value{{"error", "pipe"}};
                          if (fork() == 0) {
                            if (fork() == 0) {
                              setsid();
                              ::close(ready[0]);
                              ::close(ready[1]);  // the session exists: the task may go on
                              linger(tag);
                            }
                            ::close(ready[0]);
                            ::close(ready[1]);
                            linger((tag + "c").substr(0, 15));
                          }
                          ::close(ready[1]);
                          char byte;
                          while (::read(ready[0], &byte, 1) > 0) {
                          }
                          ::close(ready[0]);
                          usleep(20000);
                          const std::string then(task.params().string("then", "segv"));
                          if (then == "segv") ::raise(SIGSEGV);
                          if (then != "return") usleep(useconds_t(task.params().integer("ms", 10000) * 1000));
                          return mathpool::Value{{"pid", getpid()}};
                        }));
  registry.add(analysis("shell", "Runs `command` with std::system; returns its status", [](const auto& task) {
    const std::string command(task.params().string("command", "true"));
    return mathpool::Value{{"rc", std::system(command.c_str())}};
  }));

  auto reloaded = analysis("atfork_reloaded", "Reports how often the fork handlers of the library the setup "
                           "opened, closed and opened again (MATHPOOL_HOSTILE_ATFORK_LIB) ran in this process",
                           [](const auto&) {
                             return mathpool::Value{
                                 {"pid", getpid()},
                                 {"setup_pid", reload_setup_pid},
                                 {"error", reload_error},
                                 {"loaded", lib_child_runs != nullptr},
                                 {"child_runs", lib_child_runs ? lib_child_runs() : -1},
                                 {"prepare_runs", lib_prepare_runs ? lib_prepare_runs() : -1},
                                 {"lock_failures", lib_lock_failures ? lib_lock_failures() : -1}};
                           });
  reloaded.setup = reload_setup;
  registry.add(reloaded);
  registry.add(analysis("fan_then", "Starts a helper (named `tag`p) with `n` children in sessions of their own "
                        "(named `tag`) that it reaps as they end; then raises SIGSEGV (then: segv), sleeps `ms` "
                        "milliseconds (then: hang) or returns (then: return)",
                        [](const auto& task) {
                          start_fan(tag_of(task), int(task.params().integer("n", 150)));
                          const std::string then(task.params().string("then", "segv"));
                          if (then == "segv") ::raise(SIGSEGV);
                          if (then != "return") usleep(useconds_t(task.params().integer("ms", 10000) * 1000));
                          return mathpool::Value{{"pid", getpid()}};
                        }));
  registry.add(analysis("clone_quiet", "Starts a child with the raw clone system call and no exit signal (a "
                        "'clone child', which wait() without __WALL does not see), in a session of its own, "
                        "named `tag`; returns at once",
                        [](const auto& task) {
                          const std::string tag = tag_of(task);
                          int ready[2];
                          if (pipe(ready) != 0) return mathpool::Value{{"error", "pipe"}};
                          const long child = ::syscall(SYS_clone, 0L, nullptr, nullptr, nullptr, nullptr);
                          if (child == 0) {
                            setsid();
                            prctl(PR_SET_NAME, tag.c_str());  // named before the task returns
                            ::close(ready[0]);
                            ::close(ready[1]);
                            linger(tag);
                          }
                          ::close(ready[1]);
                          char byte;
                          while (child > 0 && ::read(ready[0], &byte, 1) > 0) {
                          }
                          ::close(ready[0]);
                          return mathpool::Value{{"pid", getpid()}, {"child", child}};
                        }));
  registry.add(analysis("flood", "Writes a frame header claiming `length` bytes (type 6), then `mb` MiB of 0x7f, "
                        "to fd 3, as fast as the socket takes them",
                        [](const auto& task) {
                          std::string header;
                          put_le(header, std::uint64_t(task.params().integer("length", 0xfffffff0)), 4);
                          header.push_back(6);
                          std::int64_t written = ::write(3, header.data(), header.size());
                          const std::string chunk(std::size_t(1) << 20, '\x7f');
                          const std::int64_t mb = task.params().integer("mb", 512);
                          for (std::int64_t i = 0; i < mb && written >= 0; ++i) {
                            for (std::size_t done = 0; done < chunk.size();) {
                              const ssize_t n = ::write(3, chunk.data() + done, chunk.size() - done);
                              if (n <= 0) {
                                written = -1;
                                break;
                              }
                              done += std::size_t(n);
                              written += n;
                            }
                          }
                          return mathpool::Value{{"written", written}};
                        }));
  registry.add(analysis("dlopen_lazy", "Opens `file` with dlopen(RTLD_LAZY | RTLD_LOCAL), as a plugin loading an "
                        "optional helper whose unused functions may be missing does; reports whether it loaded",
                        [](const auto& task) {
                          const std::string file(task.params().string("file", ""));
                          void* handle = dlopen(file.c_str(), RTLD_LAZY | RTLD_LOCAL);
                          const char* why = handle ? nullptr : dlerror();
                          if (handle) dlclose(handle);
                          return mathpool::Value{{"loaded", handle != nullptr},
                                                 {"error", why ? why : ""},
                                                 {"bind_now_env", std::getenv("LD_BIND_NOW") != nullptr}};
                        }));
  registry.add(analysis("big_result", "Returns a string of `mb` MiB", [](const auto& task) {
    return mathpool::Value{{"text", std::string(std::size_t(task.params().integer("mb", 64)) << 20, 'x')}};
  }));
}
