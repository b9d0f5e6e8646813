// Attacks on the containment guarantees from outside: plugins that rely on
// what a fork does (fork handlers, their own thread's id, robust mutexes),
// host programs that ignore SIGCHLD or fork children that exit, a template
// killed while it forks, buffered output under isolation: task. Each test
// runs in the start mode MATHPOOL_TEST_START names (see CMakeLists.txt).
#include <dirent.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "test_support.hpp"

namespace mathpool {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using test::children_of;
using test::live_named;
using test::wait_gone;
using test::EnvVar;
using test::hostile_pool_options;
using test::seconds_since;
using test::process_state;
using test::read_text;
using test::zombie_children;
using test::zygote_mode;

std::string start_mode() { return zygote_mode() ? "zygote" : "spawn"; }

std::string unique_tag(const std::string& what) { return (what + std::to_string(getpid() % 100000)).substr(0, 14); }


// The field "Cpus_allowed_list" of /proc/PID/status.
std::string cpus_allowed(pid_t pid) {
  std::istringstream status(read_text("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(status, line);)
    if (line.rfind("Cpus_allowed_list:", 0) == 0) return line.substr(line.find_first_not_of(" \t", 18));
  return "";
}

int cpus_of_this_process() {
  cpu_set_t set;
  CPU_ZERO(&set);
  return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
}

// Waits up to `limit` for `pid` to exit; SIGKILLs it after that. Returns
// whether it exited by itself.
bool exits_within(pid_t pid, std::chrono::milliseconds limit) {
  const auto give_up = Clock::now() + limit;
  int status = 0;
  while (Clock::now() < give_up) {
    if (waitpid(pid, &status, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(10ms);
  }
  ::kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return false;
}

// ---- the zygote template's raw clone ----------------------------------------

// A setup that registers a fork handler (pthread_atfork), as libraries with
// per-process state do (a random generator re-seeded, a connection or a
// cached pid renewed), must see it run in every process forked from the
// process that ran the setup. Workers that ran the setup themselves (spawn
// mode) need none. Here: every worker is a fresh fork from the template
// (max_tasks_per_worker: 1), and each reports its generator's first draw:
// all the same when the handler did not run.
TEST(ForkHandlers, ASetupRegisteredRunInEveryForkedWorker) {
  PoolOptions options = hostile_pool_options(2);
  options.max_tasks_per_worker = 1;
  Pool pool(options);
  const auto results = pool.map("hostile.fork_handlers", std::vector<Value>(6, Value::object()));
  std::set<std::int64_t> draws;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.error->message;
    const Value& v = r.result;
    draws.insert(v["draw"].get<std::int64_t>());
    const bool own_setup = v["setup_pid"] == v["pid"];
    const bool handler_ran = v["atfork_pid"] == v["pid"];
    EXPECT_TRUE(own_setup || handler_ran)
        << "worker " << v["pid"].dump() << " was forked from " << v["setup_pid"].dump()
        << ", which ran the setup, but the fork handler the setup registered "
           "never ran in it: "
        << v.dump();
  }
  EXPECT_EQ(draws.size(), results.size()) << "workers forked from one template drew the same 'random' numbers";
}

// The same under isolation: task: each task's process is forked by the
// worker with fork(), so the handlers run there.
TEST(ForkHandlers, RunInIsolatedTaskProcesses) {
  PoolOptions options = hostile_pool_options(1);
  options.isolation = Isolation::task;
  Pool pool(options);
  const auto results = pool.map("hostile.fork_handlers", std::vector<Value>(4, Value::object()));
  std::set<std::int64_t> draws;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.error->message;
    EXPECT_EQ(r.result["atfork_pid"], r.result["pid"]) << r.result.dump();
    draws.insert(r.result["draw"].get<std::int64_t>());
  }
  EXPECT_EQ(draws.size(), results.size());
}

// pthread_self() names the calling thread: pthread_getcpuclockid() of it is
// the task's own CPU clock, and pthread_setaffinity_np() on it binds the
// task's own thread, never another process (the template, or whatever
// process has the template's pid once it is gone). A worker cloned by the
// raw system call keeps the template's thread id in its thread descriptor.
TEST(ForkedWorkers, PthreadSelfCallsInATaskActOnTheTasksOwnThread) {
  if (cpus_of_this_process() < 2) GTEST_SKIP() << "needs two CPUs to see a binding";
  PoolOptions options = hostile_pool_options(1);
  Pool pool(options);
  const pid_t template_pid = pool.stats().template_pid;
  const std::string template_cpus = template_pid > 0 ? cpus_allowed(template_pid) : "";

  const TaskResult clock = pool.submit("hostile.own_thread", Value::object()).get();
  ASSERT_TRUE(clock.ok()) << clock.error->message;
  EXPECT_EQ(clock.result["clock_ok"], true) << "clock_gettime(pthread_getcpuclockid(pthread_self())) failed in the "
                                               "task: "
                                            << clock.result.dump();

  const TaskResult pinned = pool.submit("hostile.own_thread", {{"pin", true}}).get();
  ASSERT_TRUE(pinned.ok()) << pinned.error->message;
  EXPECT_EQ(pinned.result["pin_rc"], 0) << pinned.result.dump();
  EXPECT_EQ(pinned.result["cpus"], 1) << "pthread_setaffinity_np(pthread_self()) did not bind the task's own "
                                         "thread: "
                                      << pinned.result.dump();
  if (template_pid > 0) {
    EXPECT_EQ(cpus_allowed(template_pid), template_cpus)
        << "a task's pthread_setaffinity_np(pthread_self()) bound the zygote "
           "template "
        << template_pid << " (every worker forked from it from now on)";
  }
}

// A robust process-shared mutex (a lock on memory the setup shared between
// workers) held by a worker that dies is handed to the next locker with
// EOWNERDEAD; without the kernel's robust list registered in the worker it
// stays locked for good and every later task waits on it.
TEST(ForkedWorkers, ARobustMutexHeldByACrashedWorkerIsRecovered) {
  PoolOptions options = hostile_pool_options(1);
  Pool pool(options);
  const TaskResult crash = pool.submit("hostile.robust_lock_then_segv", Value::object()).get();
  ASSERT_EQ(crash.status(), "crashed") << crash.result.dump();
  const TaskResult locked = pool.submit("hostile.robust_lock", {{"ms", 2000}}).get();
  ASSERT_TRUE(locked.ok()) << locked.error->message;
  if (!zygote_mode()) {
    // A spawned replacement ran the setup itself: a fresh, unlocked mutex.
    EXPECT_EQ(locked.result["rc"], 0) << locked.result.dump();
    return;
  }
  EXPECT_EQ(locked.result["rc"], locked.result["eownerdead"])
      << "the mutex the crashed worker held was never released (ETIMEDOUT is " << locked.result["etimedout"].dump()
      << "): " << locked.result.dump();
}

// ---- host programs ----------------------------------------------------------

// Submits a segfaulting task to an isolated pool (task_timeout 3 s) and
// checks its record comes back at once as a crash; false when none came.
bool crash_comes_back_at_once(Pool& pool) {
  const auto start = Clock::now();
  auto future = pool.submit("hostile.segv", Value::object());
  if (future.wait_for(8s) != std::future_status::ready) {
    ADD_FAILURE() << "no record 8 s after a crash, with task_timeout 3 s: the task hangs for good";
    return false;
  }
  const TaskResult crash = future.get();
  EXPECT_EQ(crash.status(), "crashed") << (crash.error ? crash.error->message : crash.result.dump());
  EXPECT_LT(seconds_since(start), 2.0) << "the crash came back as a time-out, not at once";
  return true;
}

// A host program (a server, say) that ignores SIGCHLD so that its own
// children never become zombies. Its workers must not inherit that: under
// isolation: task a crash in a task's process would read as a reply (the
// worker's waitpid() finds no child), and std::system() in a task fails.
TEST(IgnoredSigchld, AHostThatIgnoresItStillGetsIsolatedCrashesAsCrashes) {
  struct RestoreSigchld {
    struct sigaction saved {};
    RestoreSigchld() {
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      sigaction(SIGCHLD, &ignore, &saved);
    }
    ~RestoreSigchld() { sigaction(SIGCHLD, &saved, nullptr); }
  } ignoring;
  PoolOptions options = hostile_pool_options(1);
  options.isolation = Isolation::task;
  options.task_timeout = std::chrono::milliseconds(3000);
  Pool pool(options);
  if (!crash_comes_back_at_once(pool)) return pool.terminate();
  const TaskResult system = pool.submit("hostile.system_sleep", {{"seconds", "0"}}).get();
  ASSERT_TRUE(system.ok()) << system.error->message;
  EXPECT_EQ(system.result["rc"], 0) << "std::system() in a task failed: " << system.result.dump();
}

// The same when a plugin's setup ignores SIGCHLD (it does not want zombies
// of what it starts): the worker's own wait for the task's process must not
// depend on the plugin's signal dispositions.
TEST(IgnoredSigchld, ASetupThatIgnoresItDoesNotHideIsolatedCrashes) {
  EnvVar ignore("MATHPOOL_HOSTILE_SETUP_IGNORE_SIGCHLD", "1");
  PoolOptions options = hostile_pool_options(1);
  options.isolation = Isolation::task;
  options.task_timeout = std::chrono::milliseconds(3000);
  Pool pool(options);
  if (!crash_comes_back_at_once(pool)) return pool.terminate();
  EXPECT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
}

// A host program forks a child (which does not exec) after it used a pool:
// the child's exit() runs the default pool's exit handler, and a child that
// leaves a pool's scope destroys its copy. Neither may hang the child (the
// dispatcher thread stayed with the parent), nor disturb the parent's pool.
TEST(HostFork, AForkedChildOfAHostExitsPromptlyWithTheDefaultPool) {
  set_default_pool_options(hostile_pool_options(1));
  ASSERT_TRUE(default_pool().submit("hostile.count", Value::object()).get().ok());
  const pid_t child = fork();
  if (child == 0) std::exit(0);  // atexit: the default pool's shutdown, in the child
  const auto start = Clock::now();
  EXPECT_TRUE(exits_within(child, 6000ms)) << "the forked child hung in exit()";
  EXPECT_LT(seconds_since(start), 1.0) << "the forked child's exit() waited for a pool it does not own";
  EXPECT_TRUE(default_pool().submit("hostile.count", Value::object()).get().ok()) << "the parent's pool must go on";
}

TEST(HostFork, AForkedChildThatDestroysItsCopyOfAPoolDoesNotHang) {
  auto pool = std::make_unique<Pool>(hostile_pool_options(1));
  ASSERT_TRUE(pool->submit("hostile.count", Value::object()).get().ok());
  const pid_t child = fork();
  if (child == 0) {
    const TaskResult refused = pool->submit("hostile.count", Value::object()).get();
    pool.reset();  // leaves the scope, as a child returning from the function
                   // would
    std::_Exit(refused.ok() ? 1 : 0);
  }
  EXPECT_TRUE(exits_within(child, 5000ms)) << "the forked child hung destroying its copy of the pool";
  EXPECT_TRUE(pool->submit("hostile.count", Value::object()).get().ok()) << "the parent's pool must go on";
}

// kill(0, SIGKILL) in a task costs only its own task; under isolation:
// task that task runs in a process of its own, so the worker goes on (its
// crashes are the task's, README).
TEST(TaskIsolation, KillingItsProcessGroupCostsOnlyTheTasksProcess) {
  PoolOptions options = hostile_pool_options(1);
  options.isolation = Isolation::task;
  Pool pool(options);
  const pid_t worker = pool.stats().workers[0].pid;
  const TaskResult killed = pool.submit("hostile.kill_group", Value::object()).get();
  EXPECT_EQ(killed.status(), "crashed") << (killed.error ? killed.error->message : killed.result.dump());
  EXPECT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
  EXPECT_EQ(pool.stats().workers[0].pid, worker) << "the worker died with its isolated task's kill(0, SIGKILL)";
}

// ---- what a task starts -----------------------------------------------------

// A task's child that stays, with a grandchild in a session of its own
// (a service started by a helper that itself stays): when the task crashes
// or is stopped at its time limit, the worker kills what it started "as it
// dies" (README). The grandchild is not the worker's child at that moment,
// and not in its process group; it must end all the same, also where no
// cgroup catches it.
TEST(Leftovers, AGrandchildInItsOwnSessionEndsWhenItsTaskCrashesOrTimesOut) {
  for (const bool cgroups : {true, false}) {
    std::optional<EnvVar> off;
    if (!cgroups) off.emplace("MATHPOOL_CGROUPS", "off");
    for (const Isolation isolation : {Isolation::worker, Isolation::task}) {
      for (const std::string then : {"segv", "hang"}) {
        SCOPED_TRACE(std::string(cgroups ? "cgroups if available, " : "MATHPOOL_CGROUPS=off, ") +
                     (isolation == Isolation::task ? "isolation: task, " : "isolation: worker, ") + then);
        const std::string tag = unique_tag("an" + then.substr(0, 1));
        PoolOptions options = hostile_pool_options(1);
        options.isolation = isolation;
        options.task_timeout = std::chrono::milliseconds(800);
        Pool pool(options);
        const TaskResult r =
            pool.submit("hostile.nested_session_then", {{"tag", tag}, {"then", then}, {"ms", 20000}}).get();
        EXPECT_EQ(std::string(r.status()), then == "segv" ? "crashed" : "timeout")
            << (r.error ? r.error->message : r.result.dump());
        EXPECT_TRUE(wait_gone(tag + "c").empty()) << "the task's child outlived it";
        EXPECT_TRUE(wait_gone(tag).empty()) << "the task's grandchild (own session) outlived it";
        EXPECT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
      }
    }
  }
}

// A task that returns normally after starting a background job whose
// process has a child of its own, as `(sleep 30; ...) &` in a shell does:
// the subshell is the task's orphan, the sleep its child. The worker's sweep
// kills the subshell, after which the sleep is the worker's orphan; the
// sweep must kill it too, not wait for it (here 12 s): the task's result
// (queued, not yet sent) would wait as long, and come back as a time-out.
TEST(Leftovers, ABackgroundJobWithAChildOfItsOwnDoesNotHoldUpTheWorker) {
  for (const Isolation isolation : {Isolation::worker, Isolation::task}) {
    SCOPED_TRACE(isolation == Isolation::task ? "isolation: task" : "isolation: worker");
    const std::string seconds = "12." + std::to_string(getpid());
    PoolOptions options = hostile_pool_options(1);
    options.isolation = isolation;
    options.task_timeout = std::chrono::milliseconds(4000);
    Pool pool(options);
    const auto start = Clock::now();
    const TaskResult r = pool.submit("hostile.shell", {{"command", "(sleep " + seconds + "; true) & sleep 0.2"}}).get();
    EXPECT_TRUE(r.ok()) << (r.error ? r.error->message : "");
    EXPECT_LT(seconds_since(start), 1.5) << "the result waited for the background job";
    const TaskResult next = pool.submit("hostile.count", Value::object()).get();
    EXPECT_TRUE(next.ok()) << next.error->message;
    EXPECT_LT(seconds_since(start), 2.0) << "the next task waited for the background job";
    pool.shutdown();
    EXPECT_LT(seconds_since(start), 3.0) << "the pool's shutdown waited for the background job";
  }
}

// The same without a shell, deterministically: the task returns and leaves
// a child that stays, whose own child (in a session of its own) stays too.
TEST(Leftovers, ATaskThatReturnsLeavingAChildWithAChildDoesNotHoldUpTheWorker) {
  for (const Isolation isolation : {Isolation::worker, Isolation::task}) {
    SCOPED_TRACE(isolation == Isolation::task ? "isolation: task" : "isolation: worker");
    const std::string tag = unique_tag("ar");
    PoolOptions options = hostile_pool_options(1);
    options.isolation = isolation;
    options.task_timeout = std::chrono::milliseconds(3000);
    Pool pool(options);
    const auto start = Clock::now();
    const TaskResult r = pool.submit("hostile.nested_session_then", {{"tag", tag}, {"then", "return"}}).get();
    EXPECT_TRUE(r.ok()) << (r.error ? r.error->message : "");
    auto next = pool.submit("hostile.count", Value::object());
    if (next.wait_for(6s) != std::future_status::ready) {
      ADD_FAILURE() << "the next task has no record 6 s later, with task_timeout 3 s: the worker waits for good";
      wait_gone(tag, 0ms);  // SIGKILLs the grandchild: the worker's wait ends
      pool.terminate();
      continue;
    }
    EXPECT_TRUE(next.get().ok());
    EXPECT_LT(seconds_since(start), 1.5) << "the results waited for what the task left";
    EXPECT_TRUE(wait_gone(tag + "c").empty()) << "the task's child outlived it";
    EXPECT_TRUE(wait_gone(tag).empty()) << "the task's grandchild (own session) outlived it";
  }
}

// ---- a template killed while it forks
// ----------------------------------------

// SIGKILLs of the template at random moments while it forks a worker per
// task: a worker cloned just before the kill, whose pid the host never
// learned, is still the host's child. It must not be left running or as a
// zombie of the host program.
TEST(TemplateKills, WhileForkingLeaveNoProcessBehind) {
  if (!zygote_mode()) GTEST_SKIP() << "zygote mode only";
  // A template with a setup's thread is not forked at all (its workers are
  // spawned: TemplateThreads.ATemplateWithThreadsIsNotForkedItsWorkersAreSpawned).
  const std::vector<pid_t> before = children_of(getpid());  // other pools' supervisors (the default pool's)
  for (const bool threads : {false}) {
    SCOPED_TRACE(threads ? "template with a thread (double fork)" : "single-threaded template (clone)");
    std::optional<EnvVar> thread;
    if (threads) thread.emplace("MATHPOOL_HOSTILE_SETUP_THREAD", "1");
    PoolOptions options = hostile_pool_options(2);
    options.max_tasks_per_worker = 1;  // a fork per task
    std::atomic<bool> stop{false};
    std::atomic<int> kills{0};
    {
      Pool pool(options);
      std::thread killer([&] {
        std::mt19937 random(12345);
        pid_t seen = 0;
        auto seen_since = Clock::now();
        while (!stop) {
          // Only a template that has served for 50 ms (started, forking): a
          // killer at every start-up makes the pool give up, by design.
          // Ready (its start took template_setup_seconds): a template still
          // starting is not forking, and takes 130-190 ms under ASan.
          const PoolStats now_stats = pool.stats();
          const pid_t t = now_stats.template_setup_seconds > 0 ? now_stats.template_pid : 0;
          if (t != seen) seen = t, seen_since = Clock::now();
          if (t <= 0 || Clock::now() - seen_since < 50ms) {
            std::this_thread::sleep_for(1ms);
            continue;
          }
          std::this_thread::sleep_for(std::chrono::microseconds(random() % 2000));
          if (::kill(t, SIGKILL) == 0) ++kills;
          seen = 0;
        }
      });
      for (int round = 0; round < 40 && kills < 100; ++round) {
        const auto results = pool.map("hostile.count", std::vector<Value>(20, Value::object()));
        for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.error->message;
      }
      stop = true;
      killer.join();
      std::this_thread::sleep_for(300ms);
      const auto stats = pool.stats();
      std::set<pid_t> current{stats.template_pid};
      for (const auto& w : stats.workers) current.insert(w.pid);
      std::string strays;
      for (pid_t child : children_of(getpid()))
        if (!current.count(child) && std::find(before.begin(), before.end(), child) == before.end())
          strays += std::to_string(child) + " " + read_text("/proc/" + std::to_string(child) + "/comm").substr(0, 15) +
                    "(" + std::string(1, process_state(child)) + ") ";
      EXPECT_TRUE(strays.empty()) << "children of the host that are neither its workers nor its "
                                     "template, after "
                                  << kills << " kills of the template: " << strays;
    }
    std::this_thread::sleep_for(200ms);
    EXPECT_TRUE(zombie_children().empty())
        << zombie_children().size() << " zombies after the pool, " << kills << " kills of the template";
  }
}

// A task over memory_limit under isolation: task is a memory error of its
// own process; the worker (forked from a template with the limit set, or
// spawned) goes on.
TEST(TaskIsolation, AllocationPastTheMemoryLimitIsAMemoryError) {
  PoolOptions options = hostile_pool_options(1);
  options.isolation = Isolation::task;
  options.memory_limit = std::int64_t(512) << 20;
  Pool pool(options);
  const pid_t worker = pool.stats().workers[0].pid;
  const TaskResult r = pool.submit("testkit.allocate", Value::object()).get();
  EXPECT_EQ(r.status(), "memory") << (r.error ? r.error->message : r.result.dump());
  EXPECT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
  EXPECT_EQ(pool.stats().workers[0].pid, worker);
}

// ---- blame -----------------------------------------------------------------

// A setup that crashes when it runs lazily (preload: none) on a first task:
// that task's record says it was the setup, the analysis is quarantined as
// a preloaded one would be, and other analyses go on, under either isolation.
TEST(LazySetup, ACrashIsBlamedOnTheSetupUnderEitherIsolation) {
  for (const Isolation isolation : {Isolation::worker, Isolation::task}) {
    SCOPED_TRACE(isolation == Isolation::task ? "isolation: task" : "isolation: worker");
    PoolOptions options = test::test_pool_options(1);
    options.plugin_paths.push_back(CRASH_SETUP_PLUGIN);
    options.preload = std::vector<std::string>{};
    options.retries = 0;
    options.isolation = isolation;
    Pool pool(options);
    std::string last;
    for (int i = 0; i < 3; ++i) {
      const TaskResult boom = pool.submit("crash_setup.boom", Value::object()).get();
      ASSERT_FALSE(boom.ok());
      last = boom.error->message;
      EXPECT_NE(last.find("setup"), std::string::npos) << "attempt " << i << ": " << last;
      EXPECT_NE(last.find("SIGSEGV"), std::string::npos) << "attempt " << i << ": " << last;
    }
    EXPECT_NE(last.find("quarantined"), std::string::npos) << "after 3 crashing setups: " << last;
    EXPECT_TRUE(pool.submit("crash_setup.fine", Value::object()).get().ok());
  }
}

// cancel_pending() fails what is queued at once; nothing cancelled runs
// later, and what a worker held finishes.
TEST(Cancel, PendingLeavesNothingRunningAfterwards) {
  PoolOptions options = hostile_pool_options(1);
  Pool pool(options);
  std::vector<TaskSpec> tasks;
  for (int i = 0; i < 30; ++i) tasks.push_back({"hostile.nap", {{"ms", 100}, {"i", i}}});
  auto futures = pool.submit_all(std::move(tasks));
  std::this_thread::sleep_for(250ms);
  pool.cancel_pending(TaskError{ErrorKind::crashed, "cancelled by the attack"});
  const auto cancelled_at = Clock::now();
  int ok = 0, cancelled = 0;
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready) << "a task never came back after cancel_pending";
    const TaskResult r = f.get();
    if (r.ok())
      ++ok;
    else if (r.error->message.find("cancelled by the attack") != std::string::npos)
      ++cancelled;
  }
  EXPECT_EQ(ok + cancelled, 30);
  EXPECT_LT(seconds_since(cancelled_at), 1.5) << "tasks held by the worker ran long after cancel_pending";
  const auto stats = pool.stats();
  EXPECT_EQ(stats.queued, 0);
  EXPECT_EQ(stats.in_flight, 0);
  RecordProperty("ok_after_cancel", ok);
}

// ---- isolation: task
// ---------------------------------------------------------

// A task that exits with status 0 under isolation: task (a plugin that
// calls exit(0), or whose library does) never replied: it is crashed, with
// the status, as it is under isolation: worker. Also a task that wrote a
// forged frame or a deep value to the channel from its own process.
TEST(TaskIsolation, ATaskThatExitsWithStatusZeroIsCrashedNotLost) {
  PoolOptions options = hostile_pool_options(1);
  options.isolation = Isolation::task;
  options.task_timeout = std::chrono::milliseconds(3000);
  Pool pool(options);
  for (const int code : {7, 0}) {
    SCOPED_TRACE("exit code " + std::to_string(code));
    auto future = pool.submit("testkit.exit", {{"code", code}});
    if (future.wait_for(6s) != std::future_status::ready) {
      ADD_FAILURE() << "no record 6 s after the task exited, with task_timeout 3 s: the task is lost for good";
      return pool.terminate();
    }
    const TaskResult r = future.get();
    EXPECT_EQ(r.status(), "crashed") << (r.error ? r.error->message : r.result.dump());
    if (r.error)
      EXPECT_NE(r.error->message.find("status " + std::to_string(code)), std::string::npos) << r.error->message;
  }
  EXPECT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
}

TEST(TaskIsolation, ForgedFramesFromATaskAreRefused) {
  PoolOptions options = hostile_pool_options(1);
  options.isolation = Isolation::task;
  Pool pool(options);
  const TaskResult deep = pool.submit("hostile.deep_value", {{"depth", 50000}}).get();
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.error->message.find("nested too deeply"), std::string::npos) << deep.error->message;
  EXPECT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
  const TaskResult huge = pool.submit("hostile.forge_frame", {{"length", 0xfffffff0}}).get();
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.error->message.find("protocol error"), std::string::npos) << huge.error->message;
  EXPECT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
}

// Output a setup left in stdout's buffer belongs to the worker; each task's
// process is forked with a copy of that buffer, and a task that flushes
// stdout must not print it again (the zygote template flushes before it
// forks; the worker must too).
TEST(TaskIsolation, TasksDoNotPrintTheSetupsBufferedOutputAgain) {
  test::TempDir dir;
  const std::string marker = "SETUP-MARK-" + std::to_string(getpid());
  EnvVar print("MATHPOOL_HOSTILE_SETUP_PRINT", marker);
  const auto config = dir.write("run.yaml", "pool: {workers: 1, start: " + start_mode() +
                                                ", isolation: task, retries: 0}\n"
                                                "analyses:\n  - {name: f, analysis: hostile.fork_handlers}\n"
                                                "  - {name: p, analysis: hostile.print_flush, repeat: 5}\n");
  const auto run = test::run_mathpool({"run", config.string(), "--plugin-path", HOSTILE_PLUGIN});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::size_t count = 0;
  for (auto at = run.err.find(marker); at != std::string::npos; at = run.err.find(marker, at + 1)) ++count;
  EXPECT_EQ(count, 1u) << "the setup ran once, yet its output appeared " << count << " times:\n" << run.err;
}

// An analysis not preloaded is set up on its first task in each worker
// (README, Setups). Under isolation: task that first task runs in a
// throw-away process, and the set-up state must not be thrown away with it
// (every task would pay the setup again).
TEST(LazySetup, RunsOncePerWorkerUnderTaskIsolation) {
  PoolOptions options = hostile_pool_options(1);
  options.isolation = Isolation::task;
  options.preload = std::vector<std::string>{};
  Pool pool(options);
  const auto results = pool.map("testkit.setup_count", std::vector<Value>(4, Value::object()));
  for (const auto& r : results) ASSERT_TRUE(r.ok()) << r.error->message;
  const auto stats = pool.stats();
  ASSERT_TRUE(stats.analyses.count("testkit.setup_count"));
  EXPECT_EQ(stats.analyses.at("testkit.setup_count").setups, 1)
      << "one worker, one lazy setup expected; it ran once per task";
}

}  // namespace
}  // namespace mathpool
