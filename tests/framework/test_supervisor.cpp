// The process model (one supervisor per pool) and the faults of the third
// round from outside (issue "One supervisor per pool", rows 1-9 and 12).
// Each test runs in both start modes (CMakeLists.txt adds the zygote copy).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <cstdio>
#include <optional>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "host/process/cgroup.hpp"
#include "host/process/plugin_search.hpp"
#include "host/process/worker_process.hpp"
#include "mathpool/pool.hpp"
#include "test_support.hpp"

namespace mathpool {
namespace {

using namespace std::chrono_literals;
using namespace test;
using Clock = std::chrono::steady_clock;

PoolOptions model_options(int workers) {
  PoolOptions options = test_pool_options(workers);
  options.plugin_paths = {PROCESS_MODEL_PLUGIN};
  options.retries = 0;
  return options;
}

std::vector<pid_t> new_children(const std::vector<pid_t>& before) {
  std::vector<pid_t> now;
  for (pid_t child : children_of(getpid()))
    if (std::find(before.begin(), before.end(), child) == before.end()) now.push_back(child);
  return now;
}

std::string unique_tag(const std::string& what) { return (what + std::to_string(getpid() % 100000)).substr(0, 14); }

// What a shell command printed on stdout.
std::string dir_command(const std::string& command) {
  std::string out;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
    ::pclose(pipe);
  }
  return out;
}

std::string message_of(const TaskResult& r) { return r.error ? r.error->message : r.result.dump(); }

TEST(Supervisor, TheHostHasOneChildPerPoolAndTheWorkersAreItsChildren) {
  const auto before = children_of(getpid());
  Pool pool(model_options(3));
  ASSERT_TRUE(pool.submit("pm.count", Value::object()).get().ok());
  const auto supervisors = new_children(before);
  ASSERT_EQ(supervisors.size(), 1u) << "the host's children for one pool";
  const auto workers = children_of(supervisors[0]);
  for (const auto& w : pool.stats().workers)
    EXPECT_NE(std::find(workers.begin(), workers.end(), w.pid), workers.end()) << "worker " << w.pid;
  Pool second(model_options(1));
  EXPECT_EQ(new_children(before).size(), 2u) << "one child per pool";
}

TEST(Supervisor, TheWorkerProgramDefinesNoCLibrarySymbol) {
  const auto worker = detail::default_worker_program();
  const std::string listing = dir_command("nm -D --defined-only " + worker.string());
  for (const char* symbol : {"__register_atfork", "__cxa_finalize", "fork", "pthread_atfork", "_Fork"})
    EXPECT_EQ(listing.find(std::string(" ") + symbol + "\n"), std::string::npos) << symbol << " in\n" << listing;
}

// Row 1: a reply the host would refuse is its task's error; the run ends,
// and nothing queued behind it is blamed.
TEST(Supervisor, AResultTooDeepOrTooLargeIsItsTasksErrorAndTheQueueBehindItIsFine) {
  Pool pool(model_options(1));
  std::vector<TaskSpec> tasks{{"pm.deep", {{"depth", 250}}}, {"pm.count", Value::object()},
                              {"pm.big", {{"mb", 260}}},     {"pm.count", Value::object()}};
  const auto start = Clock::now();
  auto futures = pool.submit_all(std::move(tasks));
  std::vector<TaskResult> results;
  for (auto& f : futures) results.push_back(f.get());
  EXPECT_LT(seconds_since(start), 20.0);
  ASSERT_TRUE(results[0].error) << results[0].result.dump().substr(0, 100);
  EXPECT_EQ(results[0].error->kind, ErrorKind::result_too_large) << results[0].error->message;
  ASSERT_TRUE(results[2].error);
  EXPECT_EQ(results[2].error->kind, ErrorKind::result_too_large) << results[2].error->message;
  EXPECT_TRUE(results[1].ok()) << message_of(results[1]);
  EXPECT_TRUE(results[3].ok()) << message_of(results[3]);
  EXPECT_LT(pool.stats().workers[0].restarts, 2);
}

// Row 2: a stopped supervisor does not freeze the pool: it is killed and
// replaced when it does not answer a fork request.
TEST(Supervisor, AStoppedSupervisorIsReplacedAndTheTasksGoOn) {
  const auto before = children_of(getpid());
  PoolOptions options = model_options(2);
  options.max_tasks_per_worker = 1;  // a new worker for every task
  options.task_timeout = std::chrono::milliseconds(2000);
  Pool pool(options);
  ASSERT_TRUE(pool.submit("pm.count", Value::object()).get().ok());
  const auto supervisors = new_children(before);
  ASSERT_EQ(supervisors.size(), 1u);
  ::kill(supervisors[0], SIGSTOP);
  const auto start = Clock::now();
  for (const auto& r : pool.map("pm.count", std::vector<Value>(6, Value::object()))) EXPECT_TRUE(r.ok()) << message_of(r);
  EXPECT_LT(seconds_since(start), 20.0);
  EXPECT_EQ(process_state(supervisors[0]), 0) << "the stopped supervisor is still there";
  ::kill(supervisors[0], SIGCONT);
}

// Row 2: a setup whose fork handler blocks breaks the template's fork. The
// pool finds it by trying templates with part of the setups, quarantines
// that analysis only, and the others go on.
TEST(Supervisor, ASetupWhoseForkHandlerBlocksIsQuarantinedAndTheOthersGoOn) {
  EnvVar blocking("MATHPOOL_PM_BREAK", "atfork_block");
  Pool pool(model_options(2));
  const auto start = Clock::now();
  auto breaker = pool.submit("pm.breaker", Value::object());
  for (const auto& r : pool.map("pm.count", std::vector<Value>(4, Value::object()))) EXPECT_TRUE(r.ok()) << message_of(r);
  const TaskResult broken = breaker.get();
  if (zygote_mode()) {
    ASSERT_TRUE(broken.error);
    EXPECT_NE(broken.error->message.find("quarantined"), std::string::npos) << broken.error->message;
  } else {
    EXPECT_TRUE(broken.ok()) << message_of(broken);  // spawn: nothing forks a setup's process
  }
  EXPECT_LT(seconds_since(start), 90.0);
}

// Row 3: fork handlers of a library opened with RTLD_DEEPBIND run in every
// worker (glibc's own fork()): each draws numbers of its own.
TEST(Supervisor, ForkHandlersOfADeepBoundLibraryRunInEveryWorker) {
  EnvVar library("MATHPOOL_PM_DEEPBIND", DEEPBIND_LIB);
  PoolOptions options = model_options(4);
  options.chunk_size = 1;
  Pool pool(options);
  std::vector<TaskSpec> tasks;
  for (int i = 0; i < 4; ++i) tasks.push_back({"pm.random", {{"i", i}}});
  std::map<std::int64_t, std::set<std::uint64_t>> first;
  for (auto& f : pool.submit_all(std::move(tasks))) {
    const TaskResult r = f.get();
    ASSERT_TRUE(r.ok()) << message_of(r);
    first[r.result["pid"].get<std::int64_t>()].insert(r.result["number"].get<std::uint64_t>());
  }
  std::set<std::uint64_t> numbers;
  std::size_t draws = 0;
  for (const auto& [pid, drawn] : first) {
    numbers.insert(drawn.begin(), drawn.end());
    draws += drawn.size();
  }
  EXPECT_EQ(numbers.size(), draws) << "workers drew the same \"random\" numbers";
}

// Row 4: what a task starts does not outlive it, however it hides.
TEST(Supervisor, ProcessesThatEscapeATaskDoNotOutliveIt) {
  EnvVar no_cgroups("MATHPOOL_CGROUPS", "off");  // the supervisor's own containment
  Pool pool(model_options(1));
  for (const char* how : {"clone_parent", "no_subreaper", "nofile"}) {
    SCOPED_TRACE(how);
    const std::string tag = unique_tag("esc");
    const TaskResult r = pool.submit("pm.escape", {{"how", how}, {"tag", tag}}).get();
    EXPECT_TRUE(r.ok()) << message_of(r);
    EXPECT_TRUE(pool.submit("pm.count", Value::object()).get().ok());
    EXPECT_TRUE(wait_gone(tag, 2000ms).empty()) << "a process started by the task outlived it";
  }
  EXPECT_TRUE(zombie_children().empty());
}

// Row 5: a setup that breaks the template (its descriptors) costs its
// analysis, not the pool.
TEST(Supervisor, ASetupThatBreaksTheTemplateQuarantinesOnlyItsAnalysis) {
  for (const char* how : {"nofile", "close3"}) {
    SCOPED_TRACE(how);
    EnvVar breaking("MATHPOOL_PM_BREAK", how);
    std::optional<Pool> pool;
    ASSERT_NO_THROW(pool.emplace(model_options(2)));
    for (const auto& r : pool->map("pm.count", std::vector<Value>(4, Value::object())))
      EXPECT_TRUE(r.ok()) << message_of(r);
    const TaskResult broken = pool->submit("pm.breaker", Value::object()).get();
    if (!broken.ok()) EXPECT_NE(broken.error->message.find("breaker"), std::string::npos) << broken.error->message;
  }
}

// Row 6: the progress page is written in the task's own address space; what
// a task writes there cannot stop its time limit or loop the pool.
TEST(Supervisor, ATaskThatForgesTheProgressPageStillTimesOutAndCannotLoop) {
  PoolOptions options = model_options(1);
  options.task_timeout = std::chrono::milliseconds(300);
  Pool pool(options);
  for (const char* how : {"future", "finished"}) {
    SCOPED_TRACE(how);
    const auto start = Clock::now();
    const TaskResult r = pool.submit("pm.forge_page", {{"how", how}, {"ms", 8000}}).get();
    EXPECT_EQ(std::string(r.status()), "timeout") << message_of(r);
    EXPECT_LT(seconds_since(start), 3.0);
  }
  const auto start = Clock::now();
  std::vector<TaskSpec> tasks{{"pm.forge_page", {{"how", "crash"}}}, {"pm.count", Value::object()}};
  auto futures = pool.submit_all(std::move(tasks));
  EXPECT_EQ(std::string(futures[0].get().status()), "crashed");
  EXPECT_TRUE(futures[1].get().ok());
  EXPECT_LT(seconds_since(start), 10.0);
}

// Row 7: a process a setup starts serves every task that follows.
TEST(Supervisor, AHelperProcessASetupStartedServesEveryTask) {
  EnvVar helper("MATHPOOL_PM_HELPER", "1");
  Pool pool(model_options(1));
  for (const auto& r : pool.map("pm.helper", std::vector<Value>(3, Value::object()))) {
    ASSERT_TRUE(r.ok()) << message_of(r);
    EXPECT_EQ(r.result["answered"], true);
  }
}

// Row 8: timers, signal masks and limits a task leaves do not reach the next task.
TEST(Supervisor, ATimerOrSignalStateATaskLeavesDoesNotReachTheNextTask) {
  PoolOptions options = model_options(1);
  options.task_timeout = std::chrono::milliseconds(1500);
  Pool pool(options);
  for (const char* how : {"alarm", "itimer", "posix", "mask"}) {
    SCOPED_TRACE(how);
    EXPECT_TRUE(pool.submit("pm.timer", {{"how", how}, {"ms", 200}}).get().ok());
    const TaskResult next = pool.submit("pm.nap", {{"ms", 1100}}).get();
    EXPECT_TRUE(next.ok()) << message_of(next);
  }
  // A blocked SIGTERM does not stop the next task's time limit.
  EXPECT_EQ(std::string(pool.submit("pm.nap", {{"ms", 5000}}).get().status()), "timeout");
}

// A timer of 2 ms or more set by a quick task never fires in the quick tasks
// that stream after it, nor while the worker waits (docs/containment.md):
// timers are stopped on their own schedule, a millisecond of tasks or of
// waiting, between full restores. (50 ms timers: the timers run on the
// wall clock, and a loaded machine may hold a quick task up for a few ms.)
TEST(Supervisor, ATimerAQuickTaskSetsDoesNotFireInTheQuickTasksStreamedAfterIt) {
  Pool pool(model_options(1));
  for (const char* how : {"itimer", "posix"}) {
    SCOPED_TRACE(how);
    ASSERT_TRUE(pool.submit("pm.count", Value::object()).get().ok());  // known quick from now on
    ASSERT_TRUE(pool.submit("pm.timer", {{"how", "none"}}).get().ok());  // arms nothing: known quick too
    const TaskResult first = pool.submit("pm.count", Value::object()).get();
    ASSERT_TRUE(first.ok()) << message_of(first);
    // Armed by a quick task, then quick tasks for tens of milliseconds.
    std::vector<TaskResult> results = pool.map("pm.timer", {Value{{"how", how}, {"ms", 50}}});
    ASSERT_TRUE(results.front().ok()) << message_of(results.front());
    results = pool.map("pm.count", std::vector<Value>(60000, Value::object()));  // well past 50 ms
    for (const TaskResult& r : results) ASSERT_TRUE(r.ok()) << message_of(r);
    EXPECT_EQ(results.back().result["pid"], first.result["pid"]);  // the same worker: no SIGALRM
    // And while the worker waits: the next task, 30 ms later, finds it alive.
    ASSERT_TRUE(pool.submit("pm.timer", {{"how", how}, {"ms", 50}}).get().ok());
    std::this_thread::sleep_for(150ms);
    const TaskResult later = pool.submit("pm.count", Value::object()).get();
    ASSERT_TRUE(later.ok()) << message_of(later);
    EXPECT_EQ(later.result["pid"], first.result["pid"]);
  }
  for (const WorkerStats& w : pool.stats().workers) EXPECT_EQ(w.restarts, 0);
}

// Signal dispositions and soft limits a task changed are the worker's own
// again for the next task once the worker has waited for input past the
// restore's schedule (docs/containment.md: 10 ms; a quick task sent at once
// may still see them): each kind the restore tells apart (a signal newly
// ignored, newly handled, SIGCHLD's flags, a limit).
TEST(Supervisor, SignalDispositionsAndLimitsATaskChangesDoNotReachTheNextTask) {
  Pool pool(model_options(1));
  const TaskResult before = pool.submit("pm.dispositions", Value::object()).get();
  ASSERT_TRUE(before.ok()) << message_of(before);
  const TaskResult changed = pool.submit("pm.dispositions", {{"change", true}}).get();
  ASSERT_TRUE(changed.ok()) << message_of(changed);
  EXPECT_NE(changed.result["signals"].get<std::string>(), before.result["signals"].get<std::string>());
  EXPECT_NE(changed.result["files"].get<std::string>(), before.result["files"].get<std::string>());
  std::this_thread::sleep_for(30ms);  // the subject: a worker idle past 10 ms has restored
  const TaskResult after = pool.submit("pm.dispositions", Value::object()).get();
  ASSERT_TRUE(after.ok()) << message_of(after);
  EXPECT_EQ(after.result["signals"].get<std::string>(), before.result["signals"].get<std::string>());
  EXPECT_EQ(after.result["files"].get<std::string>(), before.result["files"].get<std::string>());
  EXPECT_EQ(after.result["core"].get<std::string>(), before.result["core"].get<std::string>());
  EXPECT_EQ(before.result["pid"], after.result["pid"]);  // the same worker
}

// Nothing a task changed reaches a task not known to take under a
// millisecond, however soon it is sent (the restore runs before it).
TEST(Supervisor, SignalDispositionsATaskChangesDoNotReachALongTaskSentAtOnce) {
  Pool pool(model_options(1));
  const TaskResult before = pool.submit("pm.dispositions", {{"nap_ms", 2}}).get();
  ASSERT_TRUE(before.ok()) << message_of(before);
  const TaskResult changed = pool.submit("pm.dispositions", {{"change", true}, {"nap_ms", 2}}).get();
  ASSERT_TRUE(changed.ok()) << message_of(changed);
  EXPECT_NE(changed.result["signals"].get<std::string>(), before.result["signals"].get<std::string>());
  const TaskResult after = pool.submit("pm.dispositions", {{"nap_ms", 2}}).get();
  ASSERT_TRUE(after.ok()) << message_of(after);
  EXPECT_EQ(after.result["signals"].get<std::string>(), before.result["signals"].get<std::string>());
  EXPECT_EQ(after.result["files"].get<std::string>(), before.result["files"].get<std::string>());
  EXPECT_EQ(after.result["core"].get<std::string>(), before.result["core"].get<std::string>());
  EXPECT_EQ(before.result["pid"], after.result["pid"]);  // the same worker
}

// Row 9: without cgroups, every child of a crashing task ends, however many.
TEST(Supervisor, EveryChildOfACrashingTaskEndsWithoutCgroups) {
  EnvVar no_cgroups("MATHPOOL_CGROUPS", "off");
  Pool pool(model_options(1));
  const std::string tag = unique_tag("fan");
  const TaskResult r = pool.submit("pm.fan_crash", {{"n", 300}, {"tag", tag}}).get();
  EXPECT_EQ(std::string(r.status()), "crashed") << message_of(r);
  EXPECT_EQ(wait_gone(tag, 3000ms).size(), 0u) << "children of the crashed task survived";
}

// Row 12: a result whose encoding passes the memory limit is a memory record.
TEST(Supervisor, AResultWhoseEncodingPassesTheMemoryLimitIsAMemoryRecord) {
  PoolOptions options = model_options(1);
  options.memory_limit = std::int64_t(384) << 20;
  Pool pool(options);
  const TaskResult r = pool.submit("pm.big", {{"mb", 200}}).get();
  EXPECT_EQ(std::string(r.status()), "memory") << message_of(r).substr(0, 200);
  EXPECT_TRUE(pool.submit("pm.count", Value::object()).get().ok());
}

}  // namespace
}  // namespace mathpool

namespace mathpool {
namespace {

// Row 10: sub-cgroups a task makes inside its worker's cgroup are removed
// with it, without stalling the dispatcher, and nothing is left.
TEST(Supervisor, SubCgroupsATaskMadeGoWithItsWorkerWithoutAStall) {
  if (!detail::CgroupTree::unavailable_reason().empty())
    GTEST_SKIP() << "no cgroups here: " << detail::CgroupTree::unavailable_reason();
  PoolOptions options = model_options(1);
  options.max_tasks_per_worker = 1;  // each task's worker ends after it
  std::string pool_directory;
  const auto start = Clock::now();
  {
    Pool pool(options);
    for (int i = 0; i < 5; ++i) {
      const TaskResult r = pool.submit("pm.subcgroups", {{"n", 3}, {"i", i}}).get();
      ASSERT_TRUE(r.ok()) << message_of(r);
      EXPECT_EQ(r.result["made"], 3) << r.result.dump();
      pool_directory = std::filesystem::path(r.result["cgroup"].get<std::string>()).parent_path();
    }
    EXPECT_LT(seconds_since(start), 0.8) << "worker ends stalled on sub-cgroups";
  }
  EXPECT_FALSE(std::filesystem::exists(pool_directory)) << pool_directory << " stayed";
}

}  // namespace
}  // namespace mathpool

namespace mathpool {
namespace {

// A supervisor killed from outside closes its channel before it becomes a
// zombie; on a loaded machine the host, seeing the channel closed and no
// zombie yet, killed it itself, and so judged the outside kill its own: a
// start failure (3 end the pool's tasks) instead of a restart (Chaos, in CI).
// process_is_ending() tells a process on its way out from one that lives on.
TEST(ProcessIsEnding, FromTheMomentAKillIsSentNeverWhileAChildRuns) {
  for (int round = 0; round < 20; ++round) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      for (;;) ::pause();
    }
    EXPECT_FALSE(detail::process_is_ending(child));
    ::kill(child, SIGSTOP);  // stopped is not ending either
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, WUNTRACED), child);
    EXPECT_FALSE(detail::process_is_ending(child));
    ::kill(child, SIGKILL);
    EXPECT_TRUE(detail::process_is_ending(child)) << "pending, exiting or a zombie: at every moment after the kill";
    siginfo_t info{};
    ASSERT_EQ(::waitid(P_PID, id_t(child), &info, WEXITED | WNOWAIT), 0);
    EXPECT_TRUE(detail::process_is_ending(child)) << "a zombie";
    ASSERT_EQ(::waitpid(child, &status, 0), child);
  }
}

}  // namespace
}  // namespace mathpool
