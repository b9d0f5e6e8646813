// process_model: analyses that attack the pool's process model (one
// supervisor per pool, its workers, their state between tasks) the way the
// third round from outside did. Setups that break things are chosen by the
// environment (MATHPOOL_PM_BREAK, MATHPOOL_PM_HELPER, MATHPOOL_PM_DEEPBIND),
// so a test turns on exactly one. Processes left behind carry the name in
// `tag`. Not installed.
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <any>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <mathpool/plugin.hpp>

namespace {

mathpool::Analysis analysis(std::string name, std::string description,
                            std::function<mathpool::Value(const mathpool::TaskContext&)> run) {
  mathpool::Analysis a;
  a.name = "pm." + name;
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

[[noreturn]] void stay_named(const std::string& tag) {
  prctl(PR_SET_NAME, tag.c_str());
  for (;;) pause();
}

void block_forever() {
  for (;;) pause();
}

// The helper a setup starts (MATHPOOL_PM_HELPER=1): it answers each byte.
int helper_fd = -1;

std::uint64_t (*deepbind_next)() = nullptr;

// The progress page the host reads, found by its name in our mappings.
std::uint64_t* find_progress_page() {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.find("mathpool-progress") == std::string::npos) continue;
    return reinterpret_cast<std::uint64_t*>(std::stoull(line.substr(0, line.find('-')), nullptr, 16));
  }
  return nullptr;
}

mathpool::Value nested(int depth) {
  mathpool::Value v = mathpool::Value::array();
  for (int i = 0; i < depth; ++i) v = mathpool::Value::array({std::move(v)});
  return v;
}

}  // namespace

MATHPOOL_PLUGIN("process_model", "1.0.0") {
  registry.add(analysis("count", "Counts the tasks this process ran", [](const auto&) {
    static int count = 0;
    return mathpool::Value{{"count", ++count}, {"pid", getpid()}};
  }));
  registry.add(analysis("nap", "Sleeps `ms` milliseconds", [](const auto& task) {
    std::this_thread::sleep_for(std::chrono::milliseconds(task.params().integer("ms", 10)));
    return mathpool::Value{{"pid", getpid()}};
  }));
  registry.add(analysis("deep", "Returns a value nested `depth` deep", [](const auto& task) {
    return nested(int(task.params().integer("depth", 250)));
  }));
  registry.add(analysis("big", "Returns a string of `mb` MiB", [](const auto& task) {
    return mathpool::Value(std::string(std::size_t(task.params().integer("mb", 1)) << 20, 'x'));
  }));
  registry.add(analysis("nulls", "Returns a list of `n` nulls", [](const auto& task) {
    mathpool::Value list = mathpool::Value::array();
    const auto n = task.params().integer("n", 1000);
    for (std::int64_t i = 0; i < n; ++i) list.push_back(nullptr);
    return list;
  }));
  auto breaker = analysis("breaker", "A setup that breaks the template's fork as MATHPOOL_PM_BREAK says "
                                     "(atfork_block, nofile, close3); tasks return ok",
                          [](const auto&) { return mathpool::Value{{"pid", getpid()}}; });
  breaker.setup = []() -> std::any {
    const std::string how = env("MATHPOOL_PM_BREAK");
    if (how == "atfork_block") pthread_atfork(block_forever, nullptr, nullptr);
    if (how == "nofile") {
      rlimit four{4, 4};
      setrlimit(RLIMIT_NOFILE, &four);
    }
    if (how == "close3") ::close(3);
    return {};
  };
  registry.add(std::move(breaker));
  auto random = analysis("random", "Draws a number from a library opened with RTLD_DEEPBIND in the setup "
                                   "(MATHPOOL_PM_DEEPBIND: its path)",
                         [](const auto&) {
                           return mathpool::Value{{"number", deepbind_next ? deepbind_next() : 0}, {"pid", getpid()}};
                         });
  random.setup = []() -> std::any {
    const std::string path = env("MATHPOOL_PM_DEEPBIND");
    if (path.empty()) return {};
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!library) throw std::runtime_error(dlerror());
    deepbind_next = reinterpret_cast<std::uint64_t (*)()>(dlsym(library, "deepbind_lib_next"));
    deepbind_next();  // the template's own draw: a child that is not reseeded repeats the next one
    return {};
  };
  registry.add(std::move(random));
  auto helper = analysis("helper", "Asks the helper process its setup started (MATHPOOL_PM_HELPER=1) for an answer",
                         [](const auto&) {
                           char byte = 'p';
                           bool answered = helper_fd >= 0 && ::write(helper_fd, &byte, 1) == 1;
                           if (answered) {
                             pollfd p{helper_fd, POLLIN, 0};
                             answered = ::poll(&p, 1, 500) == 1 && ::read(helper_fd, &byte, 1) == 1 && byte == 'a';
                           }
                           return mathpool::Value{{"answered", answered}};
                         });
  helper.setup = []() -> std::any {
    if (env("MATHPOOL_PM_HELPER") != "1") return {};
    int ends[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends);
    if (fork() == 0) {
      ::close(ends[0]);
      prctl(PR_SET_NAME, "pm-helper");
      char byte;
      while (::read(ends[1], &byte, 1) == 1) {
        byte = 'a';
        if (::write(ends[1], &byte, 1) != 1) break;
      }
      _exit(0);
    }
    ::close(ends[1]);
    helper_fd = ends[0];
    return {};
  };
  registry.add(std::move(helper));
  registry.add(analysis("escape", "Starts a process named `tag` that tries to outlive the task, as `how` says: "
                                  "clone_parent, no_subreaper, nofile",
                        [](const auto& task) {
                          const std::string how = task.params().string("how", "clone_parent");
                          const std::string tag = task.params().string("tag", "pm-escape");
                          if (how == "clone_parent") {
                            const long pid = ::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
                            if (pid == 0) stay_named(tag);
                            return mathpool::Value{{"pid", pid}};
                          }
                          if (how == "no_subreaper") prctl(PR_SET_CHILD_SUBREAPER, 0);
                          if (how == "nofile") {
                            rlimit three{3, 3};
                            setrlimit(RLIMIT_NOFILE, &three);
                          }
                          // A daemon: double fork, own session.
                          const pid_t middle = fork();
                          if (middle == 0) {
                            setsid();
                            if (fork() == 0) stay_named(tag);
                            _exit(0);
                          }
                          waitpid(middle, nullptr, 0);
                          return mathpool::Value{{"how", how}};
                        }));
  registry.add(analysis("forge_page", "Writes the progress page as `how` says (future: started_ns far ahead; "
                                      "finished: finished += 1), then sleeps `ms`",
                        [](const auto& task) {
                          std::uint64_t* page = find_progress_page();
                          if (!page) throw std::runtime_error("no progress page found");
                          auto* words = reinterpret_cast<std::atomic<std::uint64_t>*>(page);
                          const std::string how = task.params().string("how", "future");
                          if (how == "future") words[2].store(std::uint64_t(1) << 62);  // started_ns
                          if (how == "finished") words[1].fetch_add(1);                 // finished
                          if (how == "crash") {
                            words[1].fetch_add(1);
                            raise(SIGSEGV);
                          }
                          std::this_thread::sleep_for(std::chrono::milliseconds(task.params().integer("ms", 0)));
                          return mathpool::Value{{"pid", getpid()}};
                        }));
  registry.add(analysis("timer", "Arms a timer as `how` says (alarm: alarm(1); itimer: setitimer of `ms`; "
                                 "posix: timer_create + timer_settime of `ms`) and returns",
                        [](const auto& task) {
                          const std::string how = task.params().string("how", "alarm");
                          const auto ms = task.params().integer("ms", 300);
                          if (how == "alarm") alarm(1);
                          if (how == "itimer") {
                            itimerval t{};
                            t.it_value.tv_sec = ms / 1000;
                            t.it_value.tv_usec = (ms % 1000) * 1000;
                            setitimer(ITIMER_REAL, &t, nullptr);
                          }
                          if (how == "posix") {
                            sigevent event{};
                            event.sigev_notify = SIGEV_SIGNAL;
                            event.sigev_signo = SIGALRM;
                            timer_t timer;
                            timer_create(CLOCK_MONOTONIC, &event, &timer);
                            itimerspec t{};
                            t.it_value.tv_sec = ms / 1000;
                            t.it_value.tv_nsec = (ms % 1000) * 1000000;
                            timer_settime(timer, 0, &t, nullptr);
                          }
                          if (how == "mask") {
                            sigset_t all;
                            sigfillset(&all);
                            sigprocmask(SIG_BLOCK, &all, nullptr);
                            signal(SIGTERM, SIG_IGN);
                          }
                          if (how == "hard_limit") {
                            rlimit low{64, 64};
                            setrlimit(RLIMIT_NOFILE, &low);
                          }
                          return mathpool::Value{{"pid", getpid()}};
                        }));
  registry.add(analysis("dispositions", "Returns this process's signal dispositions (a string: d default, i "
                                        "ignored, h handled, per signal 1..64; then n if SIGCHLD has "
                                        "SA_NOCLDWAIT) and its soft limits of descriptors and core size; with "
                                        "`change`, first ignores SIGUSR1, handles SIGUSR2 and SIGWINCH, sets "
                                        "SA_NOCLDWAIT on SIGCHLD and lowers both soft limits; then sleeps `nap_ms` "
                                        "milliseconds (0)",
                        [](const auto& task) {
                          if (task.params().boolean("change", false)) {
                            signal(SIGUSR1, SIG_IGN);
                            struct sigaction handled {};
                            handled.sa_handler = [](int) {};
                            sigaction(SIGUSR2, &handled, nullptr);
                            sigaction(SIGWINCH, &handled, nullptr);
                            struct sigaction child {};
                            child.sa_handler = SIG_DFL;
                            child.sa_flags = SA_NOCLDWAIT;
                            sigaction(SIGCHLD, &child, nullptr);
                            for (int resource : {RLIMIT_NOFILE, RLIMIT_CORE}) {
                              rlimit now;
                              getrlimit(resource, &now);
                              now.rlim_cur = now.rlim_cur > 64 || now.rlim_cur == RLIM_INFINITY ? 64 : 0;
                              setrlimit(resource, &now);
                            }
                          }
                          std::string kinds;
                          for (int s = 1; s <= 64; ++s) {
                            struct sigaction now {};
                            if (s == SIGKILL || s == SIGSTOP || sigaction(s, nullptr, &now) != 0) kinds += '-';
                            else kinds += now.sa_handler == SIG_DFL ? 'd' : now.sa_handler == SIG_IGN ? 'i' : 'h';
                          }
                          struct sigaction child {};
                          sigaction(SIGCHLD, nullptr, &child);
                          if (child.sa_flags & SA_NOCLDWAIT) kinds += 'n';
                          rlimit files, core;
                          getrlimit(RLIMIT_NOFILE, &files);
                          getrlimit(RLIMIT_CORE, &core);
                          std::this_thread::sleep_for(std::chrono::milliseconds(task.params().integer("nap_ms", 0)));
                          return mathpool::Value{{"signals", kinds},
                                                 {"files", std::to_string(files.rlim_cur)},
                                                 {"core", std::to_string(core.rlim_cur)},
                                                 {"pid", getpid()}};
                        }));
  registry.add(analysis("subcgroups", "Makes `n` empty sub-cgroups inside its own cgroup (cgroup v2); returns "
                                      "its cgroup's directory",
                        [](const auto& task) {
                          std::ifstream membership("/proc/self/cgroup");
                          std::string line, relative;
                          while (std::getline(membership, line))
                            if (line.rfind("0::", 0) == 0) relative = line.substr(3);
                          std::string mount = "/sys/fs/cgroup";  // or where cgroup2 is (a hybrid setup)
                          std::ifstream mounts("/proc/self/mountinfo");
                          while (std::getline(mounts, line)) {
                            if (line.find(" - cgroup2 ") == std::string::npos) continue;
                            std::istringstream fields(line);
                            std::string id, parent, device, root;
                            fields >> id >> parent >> device >> root >> mount;
                            break;
                          }
                          const std::string own = mount + relative;
                          int made = 0;
                          for (std::int64_t i = 0; i < task.params().integer("n", 3); ++i)
                            made += ::mkdir((own + "/pm-sub-" + std::to_string(i)).c_str(), 0755) == 0;
                          return mathpool::Value{{"cgroup", own}, {"made", made}};
                        }));
  registry.add(analysis("fan_crash", "Starts `n` children (named `tag`), each in a session of its own, then "
                                     "raises SIGSEGV",
                        [](const auto& task) -> mathpool::Value {
                          const auto n = task.params().integer("n", 300);
                          const std::string tag = task.params().string("tag", "pm-fan");
                          for (std::int64_t i = 0; i < n; ++i) {
                            if (fork() == 0) {
                              setsid();
                              stay_named(tag);
                            }
                          }
                          raise(SIGSEGV);
                          return nullptr;
                        }));
}
