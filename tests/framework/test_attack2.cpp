// The second round of attacks from outside, on the code of the first
// round's fixes: the dying worker's deepest-first kill, the sweep after a
// task, the zygote template's emulation of fork() (fork handlers recorded
// through the exported __register_atfork), the channel's input buffer, and
// describe(). Each test runs in the start mode MATHPOOL_TEST_START names (see
// CMakeLists.txt).
#include <dirent.h>
#include <dlfcn.h>
#include <malloc.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "mathpool/registry.hpp"
#include "test_support.hpp"

namespace mathpool {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using test::EnvVar;
using test::hostile_pool_options;
using test::live_named;
using test::process_state;
using test::read_text;
using test::wait_gone;
using test::zygote_mode;

std::string unique_tag(const std::string& what) { return (what + std::to_string(getpid() % 100000)).substr(0, 13); }

// A memory figure of this process from /proc/self/status ("VmHWM:" for the
// peak resident size, "VmRSS:" for the current one), in bytes.
std::int64_t status_bytes(const std::string& field) {
  std::istringstream status(read_text("/proc/self/status"));
  for (std::string line; std::getline(status, line);)
    if (line.rfind(field, 0) == 0) return std::atoll(line.c_str() + field.size()) * 1024;
  return -1;
}
std::int64_t peak_resident_bytes() { return status_bytes("VmHWM:"); }
std::int64_t resident_bytes() { return status_bytes("VmRSS:"); }

// ---- the dying worker's kill ------------------------------------------------

// A task whose helper keeps many children, each in a session of its own, and
// reaps those that end (a shell with background jobs and `wait`; a process
// pool). When the task crashes or is stopped at its time limit, the dying
// worker must end every one of them: README, "the task returns, crashes, or
// is stopped at its time limit by SIGTERM | always". Without cgroups nothing
// else catches a child in its own session. The helper and its children are
// two generations, well inside the documented six.
TEST(Leftovers, EveryChildOfAReapingHelperEndsWhenItsTaskCrashesOrTimesOut) {
  EnvVar off("MATHPOOL_CGROUPS", "off");
  struct Case {
    Isolation isolation;
    std::string then;
  };
  for (const Case& c : {Case{Isolation::worker, "segv"}, Case{Isolation::worker, "hang"},
                        Case{Isolation::task, "segv"}, Case{Isolation::task, "hang"}}) {
    SCOPED_TRACE((c.isolation == Isolation::task ? "isolation: task, " : "isolation: worker, ") + c.then);
    const std::string tag = unique_tag("fan" + c.then.substr(0, 1) + (c.isolation == Isolation::task ? "t" : "w"));
    PoolOptions options = hostile_pool_options(1);
    options.isolation = c.isolation;
    // A crash comes once the children are started (160 forks: seconds
    // under TSan on a loaded machine), so its limit is far; a hang's is near.
    options.task_timeout = std::chrono::milliseconds(c.then == "segv" ? 30000 : 2500);
    Pool pool(options);
    const TaskResult r =
        pool.submit("hostile.fan_then", {{"tag", tag}, {"then", c.then}, {"n", 160}, {"ms", 20000}}).get();
    EXPECT_EQ(std::string(r.status()), c.then == "segv" ? "crashed" : "timeout")
        << (r.error ? r.error->message : r.result.dump());
    const auto helpers = wait_gone(tag + "p");
    EXPECT_TRUE(helpers.empty()) << "the task's helper outlived it";
    const auto children = wait_gone(tag);
    EXPECT_TRUE(children.empty()) << children.size() << " of the helper's 160 children (each in a session of its "
                                     "own) outlived the task";
    EXPECT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
  }
}

// ---- the sweep after a task -------------------------------------------------

// A child started with the raw clone system call and no exit signal (a
// "clone child": wait() without __WALL does not see it), in a session of its
// own. README: what a task starts is "killed after the task". The sweep's
// first check, waitid(P_ALL) without __WALL, finds no child and returns.
TEST(Leftovers, AChildWithoutAnExitSignalDoesNotOutliveItsTask) {
  for (const Isolation isolation : {Isolation::worker, Isolation::task}) {
    SCOPED_TRACE(isolation == Isolation::task ? "isolation: task" : "isolation: worker");
    const std::string tag = unique_tag(isolation == Isolation::task ? "qclt" : "qclw");
    PoolOptions options = hostile_pool_options(1);
    options.isolation = isolation;
    options.task_timeout = std::chrono::milliseconds(3000);
    Pool pool(options);
    const TaskResult r = pool.submit("hostile.clone_quiet", {{"tag", tag}}).get();
    ASSERT_TRUE(r.ok()) << r.error->message;
    ASSERT_GT(r.result["child"].get<std::int64_t>(), 0) << r.result.dump();
    EXPECT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
    const auto left = wait_gone(tag);
    EXPECT_TRUE(left.empty()) << "the task's child (pid " << r.result["child"].dump()
                              << ") outlived the task and the next one, with its worker still serving";
  }
}

// ---- the zygote template's fork handlers ------------------------------------

// A setup opens a library whose constructor registers fork handlers that
// take its lock before a fork and release it after (as allocators and
// generators do), closes it and opens it again. The C library dropped the
// first registration at dlclose; fork() runs the handlers once. A worker
// forked from the template must see them run once too: prepare found the
// lock free (with a blocking lock, a second prepare deadlocks the template).
TEST(ForkHandlers, OfALibraryOpenedClosedAndOpenedAgainRunOncePerFork) {
  EnvVar lib("MATHPOOL_HOSTILE_ATFORK_LIB", ATFORK_LIB);
  PoolOptions options = hostile_pool_options(1);
  options.max_tasks_per_worker = 1;  // every task in a fresh fork of the template
  Pool pool(options);
  const auto results = pool.map("hostile.atfork_reloaded", std::vector<Value>(3, Value::object()));
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.error->message;
    const Value& v = r.result;
    ASSERT_EQ(v["loaded"], true) << v.dump();
    EXPECT_EQ(v["lock_failures"], 0) << "a fork handler's prepare found its own lock taken: the handlers of the "
                                        "closed copy of the library ran as well as the open one's: "
                                     << v.dump();
    if (v["setup_pid"] != v["pid"]) {
      EXPECT_GE(v["child_runs"].get<int>(), 1) << v.dump();
    }
  }
}

// Opens and closes the fork handlers' library `times` times in a setup, then
// runs tasks each in a fresh fork of the template: the handlers of the last
// opening run, once per fork.
void expect_fork_handlers_run_once_after_reopening(const std::string& times) {
  EnvVar lib("MATHPOOL_HOSTILE_ATFORK_LIB", ATFORK_LIB);
  EnvVar reopen("MATHPOOL_HOSTILE_ATFORK_TIMES", times);
  PoolOptions options = hostile_pool_options(1);
  options.max_tasks_per_worker = 1;
  Pool pool(options);
  const auto results = pool.map("hostile.atfork_reloaded", std::vector<Value>(2, Value::object()));
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.error->message;
    EXPECT_EQ(r.result["lock_failures"], 0) << r.result.dump();
  }
}

// The same library opened and closed five times: every registration but the
// last was dropped by the C library.
TEST(ForkHandlers, OfALibraryReopenedManyTimesRunOncePerFork) {
  expect_fork_handlers_run_once_after_reopening("5");
}

// More openings than the template's record holds (64 registrations): closed
// libraries' handlers leave the record, so it never fills.
TEST(ForkHandlers, PastTheRecordLimitStillRunOncePerFork) {
  expect_fork_handlers_run_once_after_reopening("70");
}

// A task that stops its own process (SIGSTOP: the process running the
// task, the worker or the task's process) is stopped at its time limit like
// a hung one, and the pool goes on.
TEST(TimeLimits, ATaskThatStopsItsOwnProcessTimesOut) {
  for (const Isolation isolation : {Isolation::worker, Isolation::task}) {
    SCOPED_TRACE(isolation == Isolation::task ? "isolation: task" : "isolation: worker");
    PoolOptions options = hostile_pool_options(1);
    options.isolation = isolation;
    options.task_timeout = std::chrono::milliseconds(800);
    Pool pool(options);
    const auto start = Clock::now();
    const TaskResult r = pool.submit("hostile.shell", {{"command", "kill -STOP $PPID"}}).get();
    EXPECT_EQ(std::string(r.status()), "timeout") << (r.error ? r.error->message : r.result.dump());
    if (r.error) EXPECT_EQ(r.error->message.find("not begun"), std::string::npos) << r.error->message;
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 3.0);
    EXPECT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
  }
}

// A worker stopped from outside before its next task: that task times out
// as any other, and its error says the worker never began it (an instant
// task charged `timeout` on a loaded machine says why). The pool goes on.
TEST(TimeLimits, ATaskItsStoppedWorkerNeverBeganTimesOutAndSaysSo) {
  PoolOptions options = hostile_pool_options(1);
  options.task_timeout = std::chrono::milliseconds(800);
  Pool pool(options);
  const TaskResult first = pool.submit("hostile.count", Value::object()).get();
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(::kill(first.worker, SIGSTOP), 0);
  const TaskResult r = pool.submit("hostile.count", Value::object()).get();
  EXPECT_EQ(std::string(r.status()), "timeout") << (r.error ? r.error->message : r.result.dump());
  ASSERT_TRUE(r.error);
  EXPECT_NE(r.error->message.find("(its progress page showed the task not begun)"), std::string::npos)
      << r.error->message;
  EXPECT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
}

// A setup that calls daemon(): the process running it exits with status 0
// and a copy in a session of its own goes on in its place, holding the
// worker's (or the template's) channel. README: a setup that kills its
// worker has its analysis quarantined after 2 crashes, the other analyses go
// on; nothing it leaves outlives it.
TEST(Leftovers, ASetupThatDaemonizesIsContained) {
  // Which comes first, the exit or the copy's messages, varies: several pools.
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE("pool " + std::to_string(round + 1));
    const std::string tag = unique_tag("dmn");
    EnvVar daemonize("MATHPOOL_HOSTILE_SETUP_DAEMON", tag);
    PoolOptions options = hostile_pool_options(1);
    options.task_timeout = std::chrono::milliseconds(3000);
    options.preload = std::vector<std::string>{"hostile.system_sleep"};
    try {
      Pool pool(options);
      auto other = pool.submit("hostile.count", Value::object());
      if (other.wait_for(15s) != std::future_status::ready) {
        ADD_FAILURE() << "another analysis got no result in 15 s";
        wait_gone(tag, 0ms);
        pool.terminate();
      } else {
        const TaskResult r = other.get();
        EXPECT_TRUE(r.ok()) << "another analysis failed: " << r.error->message;
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "the pool failed to start: " << e.what();
    }
    EXPECT_TRUE(wait_gone(tag, 2000ms).empty()) << "the setup's daemon copy outlived the pool";
  }
}

// ---- the channel ------------------------------------------------------------

// A task writes a frame header over the size limit to the channel and then
// streams bytes as fast as the socket takes them. The host must refuse the
// frame by its header (a protocol error: crashed), not read the stream into
// its buffer first: its memory would grow by whatever the task writes, and
// its event loop would serve nothing else meanwhile.
TEST(ChannelAbuse, AStreamAfterAnOversizedHeaderIsRefusedWithoutBufferingIt) {
  PoolOptions options = hostile_pool_options(1);
  options.task_timeout = std::chrono::milliseconds(20000);
  Pool pool(options);
  ASSERT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
  const std::int64_t before = peak_resident_bytes();
  const auto start = Clock::now();
  const TaskResult r = pool.submit("hostile.flood", {{"length", 0xfffffff0LL}, {"mb", 768}}).get();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_TRUE(r.error) << r.result.dump();
  EXPECT_EQ(r.error->kind, ErrorKind::protocol_error) << r.error->message;
  const std::int64_t grown = peak_resident_bytes() - before;
  EXPECT_LT(grown, std::int64_t(64) << 20) << "the host's peak memory grew by " << (grown >> 20)
                                           << " MiB while a task streamed 768 MiB after a frame header over "
                                              "the limit";
  EXPECT_LT(seconds, 5.0);
  EXPECT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
}

// One task returns a large result (128 MiB, half the frame limit), then the
// pool goes on with small ones. Once the result is dropped, the host's
// memory should come back down: the channel's input buffer "grows but never
// shrinks", so every worker that ever returned one large result keeps its
// size resident in the host for the rest of its life (8 workers: 1 GiB).
TEST(LargeResults, AOneOffLargeResultDoesNotStayResidentInTheHost) {
  PoolOptions options = hostile_pool_options(1);
  Pool pool(options);
  ASSERT_TRUE(pool.submit("hostile.count", Value::object()).get().ok());
  const std::int64_t before = resident_bytes();
  {
    const TaskResult big = pool.submit("hostile.big_result", {{"mb", 128}}).get();
    ASSERT_TRUE(big.ok()) << big.error->message;
    ASSERT_EQ(big.result["text"].get_ref<const std::string&>().size(), std::size_t(128) << 20);
  }
  const auto small = pool.map("hostile.count", std::vector<Value>(200, Value::object()));
  for (const auto& r : small) ASSERT_TRUE(r.ok());
  malloc_trim(0);  // what the allocator merely caches is not counted
  const std::int64_t grown = resident_bytes() - before;
  EXPECT_LT(grown, std::int64_t(32) << 20) << "the host keeps " << (grown >> 20)
                                           << " MiB resident after a 128 MiB result was dropped and 200 small "
                                              "tasks ran on the same worker";
}

// ---- describe() -------------------------------------------------------------

// describe() is the pool's line in RegistryStats and logs: two registered
// pools whose options differ must not read the same.
TEST(PoolDescribe, TellsApartOptionsThatDiffer) {
  PoolOptions a;
  PoolOptions b;
  b.worker_program = "/opt/other/mathpool-worker";
  ASSERT_FALSE(a == b);
  EXPECT_NE(describe(a), describe(b)) << "pools with different worker programs both read: " << describe(a);
}


// ---- LD_BIND_NOW -------------------------------------------------------------

// Workers start with LD_BIND_NOW=1, "taken out of their environment". The
// dynamic loader reads it once, at start: with it, every later
// dlopen(RTLD_LAZY) binds every symbol at once. A plugin that loads an
// optional helper lazily, some of whose functions it never calls are
// missing (here: the test plugin missing_symbol, a call to a function no
// library defines), loads it in any process but a worker.
TEST(ForkedWorkers, ALazyDlopenInATaskBindsLazilyAsInAnyProcess) {
  void* here = dlopen(MISSING_SYMBOL_PLUGIN, RTLD_LAZY | RTLD_LOCAL);
  ASSERT_NE(here, nullptr) << "dlopen(RTLD_LAZY) fails in the test process too: " << dlerror();
  dlclose(here);
  Pool pool(hostile_pool_options(1));
  const TaskResult r = pool.submit("hostile.dlopen_lazy", {{"file", MISSING_SYMBOL_PLUGIN}}).get();
  ASSERT_TRUE(r.ok()) << r.error->message;
  EXPECT_EQ(r.result["bind_now_env"], false) << r.result.dump();
  EXPECT_EQ(r.result["loaded"], true) << "dlopen(RTLD_LAZY) in a task bound every symbol at once: "
                                      << r.result["error"].dump();
}

}  // namespace
}  // namespace mathpool
