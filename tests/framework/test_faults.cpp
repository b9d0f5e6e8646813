// Faults of plugins and workers: each becomes one precise record, the pool
// keeps serving, and detection is quick (the latency is printed for the notes).
#include <chrono>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "mathpool/pool.hpp"
#include "test_support.hpp"

namespace mathpool {
namespace {

using Clock = std::chrono::steady_clock;

struct Observed {
  TaskResult result;
  double seconds;
};

// Runs one faulty task, then checks the pool still serves a healthy one.
Observed run_fault(Pool& pool, const std::string& analysis, Value params = Value::object()) {
  const auto start = Clock::now();
  TaskResult result = pool.submit(analysis, std::move(params)).get();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::cout << "[ latency  ] " << analysis << ": " << result.status() << " after "
            << seconds * 1000 << " ms\n";
  TaskResult healthy = pool.submit("testkit.pid", {}).get();
  EXPECT_TRUE(healthy.ok()) << "pool did not keep serving after " << analysis;
  return {std::move(result), seconds};
}

PoolOptions no_retry_options() {
  PoolOptions options = test::test_pool_options(1);
  options.retries = 0;
  return options;
}

void expect_error(const TaskResult& r, ErrorKind kind, const std::string& fragment) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->kind, kind) << r.error->message;
  EXPECT_NE(r.error->message.find(fragment), std::string::npos) << r.error->message;
}

TEST(Faults, SegfaultIsCrashedWithTheSignal) {
  Pool pool(no_retry_options());
  auto seen = run_fault(pool, "testkit.segfault");
  EXPECT_EQ(seen.result.status(), "crashed");
  expect_error(seen.result, ErrorKind::crashed, "SIGSEGV");
}

TEST(Faults, AbortIsCrashedWithSigabrt) {
  Pool pool(no_retry_options());
  expect_error(run_fault(pool, "testkit.abort").result, ErrorKind::crashed, "SIGABRT");
}

TEST(Faults, FlintAbortIsCrashedWithSigabrt) {
  Pool pool(no_retry_options());
  expect_error(run_fault(pool, "testkit.flint_abort").result, ErrorKind::crashed, "SIGABRT");
}

TEST(Faults, ExitMidTaskIsCrashedWithTheStatus) {
  Pool pool(no_retry_options());
  expect_error(run_fault(pool, "testkit.exit", {{"code", 0}}).result, ErrorKind::crashed,
               "exited with status 0");
  expect_error(run_fault(pool, "testkit.exit", {{"code", 7}}).result, ErrorKind::crashed,
               "exited with status 7");
}

TEST(Faults, RetriedCrashIsReportedOnceAfterEveryAttempt) {
  PoolOptions options = test::test_pool_options(2);
  options.retries = 2;
  Pool pool(options);
  auto seen = run_fault(pool, "testkit.segfault");
  expect_error(seen.result, ErrorKind::crashed, "SIGSEGV");
  EXPECT_EQ(seen.result.attempts, 3);
  EXPECT_EQ(pool.stats().tasks_failed, 1);
}

// Tasks that finished before a crashing task lose their results with the
// worker (replies are batched) and run again; a death with a verdict (the page
// names the crashing task) is no reason to charge them. A run of 8 crashing
// tasks behind 4 quick ones charged the first of them `crashed` after 6 deaths
// ("with no verdict on it"): seen in 6 of 20 runs of such a config, and in the
// build before tasks travelled as ranges too.
TEST(Faults, QuickTasksBeforeARunOfCrashingTasksAreNeverCharged) {
  Pool pool(no_retry_options());
  std::vector<Value> params;
  for (int i = 0; i < 4; ++i) params.push_back({{"x", i}});
  for (int i = 0; i < 8; ++i) params.push_back({{"x", i}, {"fault", "crash"}});
  for (int round = 0; round < 3; ++round) {
    const std::vector<TaskResult> results = pool.map("testkit.echo", params);
    for (int i = 0; i < 4; ++i)
      EXPECT_TRUE(results[std::size_t(i)].ok()) << "task " << i << ": " << results[std::size_t(i)].error->message;
    for (int i = 4; i < 12; ++i) EXPECT_EQ(results[std::size_t(i)].status(), "crashed");
  }
}

// Found from outside: a task that replaces its worker's channel (fd 3)
// among quick tasks of its own analysis lost their batched replies with
// its own, no death named it, and the quick tasks ahead of it used up
// their refunds: 18-60 of 2000 were charged `crashed`. Only it is.
void expect_only_the_channel_thief_fails(StartMode start) {
  PoolOptions options = no_retry_options();
  options.start = start;
  Pool pool(options);
  std::vector<Value> params;
  for (int i = 0; i < 2000; ++i) params.push_back({{"x", i}});
  params.push_back({{"x", -1}, {"fault", "steal3"}});
  for (int i = 0; i < 100; ++i) params.push_back({{"x", i}});
  const std::vector<TaskResult> results = pool.map("testkit.echo", params);
  ASSERT_EQ(results.size(), params.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (i == 2000) {
      EXPECT_EQ(results[i].status(), "crashed");
      continue;
    }
    ASSERT_TRUE(results[i].ok()) << "task " << i << ": " << results[i].error->message;
    EXPECT_EQ(results[i].result.at("x"), params[i].at("x"));
  }
  EXPECT_TRUE(pool.submit("testkit.pid", Value::object()).get().ok());
}

TEST(Faults, ATaskThatReplacesItsChannelIsChargedAloneSpawn) { expect_only_the_channel_thief_fails(StartMode::spawn); }
TEST(Faults, ATaskThatReplacesItsChannelIsChargedAloneZygote) { expect_only_the_channel_thief_fails(StartMode::zygote); }

TEST(Faults, InfiniteLoopTimesOutAndTheWorkerIsReplaced) {
  PoolOptions options = no_retry_options();
  options.task_timeout = std::chrono::milliseconds(300);
  Pool pool(options);
  const int pid = pool.stats().workers[0].pid;
  auto seen = run_fault(pool, "testkit.spin");
  EXPECT_EQ(seen.result.status(), "timeout");
  expect_error(seen.result, ErrorKind::timeout, "300ms");
  EXPECT_LT(seen.seconds, 2.0);
  EXPECT_NE(pool.stats().workers[0].pid, pid);
}

TEST(Faults, ATaskThatAnswersAfterItsSigtermDoesNotDoomTheNextTask) {
  PoolOptions options = no_retry_options();
  options.task_timeout = std::chrono::milliseconds(100);
  Pool pool(options);
  // It answers on its SIGTERM, within the grace. (It slept 180 ms: a host
  // that reached the 100 ms limit 80 ms late, seen once under ASan in CI, read
  // its answer first, and the worker was rightly kept.) The host stopped it
  // at its limit: `timeout`, whatever it answers then (it was `ok`, with
  // seconds past the limit, found from outside).
  auto late = pool.submit("testkit.answer_after_sigterm", {});
  auto next = pool.submit("testkit.sleep", {{"ms", 20}});  // behind it on the same worker
  const TaskResult first = late.get();
  const TaskResult second = next.get();
  EXPECT_EQ(first.status(), "timeout");
  expect_error(first, ErrorKind::timeout, "100ms");
  ASSERT_TRUE(second.ok()) << second.error->message;
  EXPECT_EQ(second.attempts, 1);
  EXPECT_NE(second.result.at("pid"), first.worker);  // the SIGTERMed worker was replaced
}

TEST(Faults, TerminateIsBoundedWhileAWorkerIsBusyAndOutputIsPending) {
  PoolOptions options = no_retry_options();
  options.chunk_size = 256;
  Pool pool(options);
  auto busy = pool.submit("testkit.sleep", {{"ms", 5000}});
  auto queued = pool.submit_all(std::vector<TaskSpec>(2000, {"example.echo", {{"blob", std::string(4096, 'x')}}}));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto start = Clock::now();
  pool.terminate();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::cout << "[ latency  ] terminate with a busy worker: " << seconds * 1000 << " ms\n";
  EXPECT_LT(seconds, 2.0);
  EXPECT_EQ(busy.get().status(), "crashed");
  for (auto& f : queued) EXPECT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
}

TEST(Faults, AllocationPastTheMemoryLimitIsAMemoryError) {
  // Through operator new (std::bad_alloc) and through FLINT's allocator.
  for (const std::string analysis : {"testkit.allocate", "testkit.flint_allocate"}) {
    PoolOptions options = no_retry_options();
    options.memory_limit = std::int64_t{512} << 20;
    Pool pool(options);
    auto seen = run_fault(pool, analysis);
    EXPECT_EQ(seen.result.status(), "memory") << analysis;
    expect_error(seen.result, ErrorKind::memory, "memory");
    // What was exceeded is named: "out of memory (std::bad_alloc)" or "worker N
    // ran out of memory" alone left users guessing.
    expect_error(seen.result, ErrorKind::memory, "; the pool's memory_limit is 512 MiB of address space per worker");
  }
}

// A memory_limit too small to map the plugins' libraries (FLINT's among
// them): the pool does not start, and the error names the limit, where the
// loader's "failed to map segment from shared object" alone read as a
// broken plugin.
TEST(Faults, AMemoryLimitTooSmallToLoadThePluginsIsNamed) {
  PoolOptions options = no_retry_options();
  options.memory_limit = std::int64_t{12} << 20;
  try {
    Pool pool(options);
    pool.submit("testkit.pid", {}).get();
    FAIL() << "a pool started with 12 MiB of address space per worker";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("the pool's memory_limit is 12 MiB of address space per worker, which may be too little to load it"),
              std::string::npos)
        << what;
  }
}

TEST(Faults, OutputOnStdoutCannotCorruptTheChannel) {
  Pool pool(no_retry_options());
  auto seen = run_fault(pool, "testkit.stdout");
  ASSERT_TRUE(seen.result.ok());
  EXPECT_EQ(seen.result.result.at("printed"), true);
}

// A reply the host refuses is that task's error, never a death between tasks.
TEST(Faults, GarbageOnTheChannelIsTheTasksProtocolError) {
  Pool pool(no_retry_options());
  auto seen = run_fault(pool, "testkit.channel_garbage");
  expect_error(seen.result, ErrorKind::protocol_error, "protocol error");
  EXPECT_LT(seen.seconds, 2.0);
}

// The host stops a worker whose reply it refuses: that is the refused
// task's fault alone. Tasks the worker held behind it (a chunk: here 50)
// go back uncharged; the one it had begun was charged `crashed` before
// (found from outside: the first echo after the garbage, with retries: 0).
TEST(Faults, GarbageOnTheChannelChargesNoTaskHeldBehindIt) {
  PoolOptions options = no_retry_options();
  options.chunk_size = 50;
  Pool pool(options);
  for (int round = 0; round < 3; ++round) {
    std::vector<std::future<TaskResult>> before, after;
    for (int i = 0; i < 20; ++i) before.push_back(pool.submit("testkit.echo", {{"x", i}}));
    auto garbage = pool.submit("testkit.channel_garbage", {});
    for (int i = 0; i < 20; ++i) after.push_back(pool.submit("testkit.echo", {{"x", i}}));
    for (auto& f : before) EXPECT_TRUE(f.get().ok());
    expect_error(garbage.get(), ErrorKind::protocol_error, "protocol error");
    for (auto& f : after) {
      const TaskResult r = f.get();
      EXPECT_TRUE(r.ok()) << r.error->message;
    }
  }
  EXPECT_EQ(pool.stats().workers.at(0).restarts, 3);
}

TEST(Faults, ExceptionOfAnUnknownTypeIsAPluginError) {
  Pool pool(no_retry_options());
  expect_error(run_fault(pool, "testkit.throw_int").result, ErrorKind::plugin_error,
               "unknown exception");
}

TEST(Faults, InvalidParamsThrownByAPluginKeepsItsKind) {
  Pool pool(no_retry_options());
  expect_error(run_fault(pool, "testkit.throw_invalid").result, ErrorKind::invalid_params,
               "parameter 'x'");
}

TEST(Faults, FailingSetupIsReportedAndOtherAnalysesGoOn) {
  PoolOptions options = no_retry_options();
  options.plugin_paths.push_back(BAD_SETUP_PLUGIN);
  Pool pool(options);
  TaskResult broken = pool.submit("bad_setup.broken", {}).get();
  expect_error(broken, ErrorKind::plugin_error, "setup failed: the table is missing");
  EXPECT_TRUE(pool.submit("example.echo", {}).get().ok());
}

TEST(Faults, SetupThatKillsItsWorkerIsQuarantinedAndOtherAnalysesGoOn) {
  PoolOptions options = test::test_pool_options(2);
  options.plugin_paths.push_back(CRASH_SETUP_PLUGIN);
  const auto start = Clock::now();
  Pool pool(options);  // starts although one setup crashes every process it runs in
  std::cout << "[ latency  ] pool ready despite crashing setup after "
            << std::chrono::duration<double>(Clock::now() - start).count() * 1000 << " ms\n";
  TaskResult boom = pool.submit("crash_setup.boom", {}).get();
  expect_error(boom, ErrorKind::plugin_error, "quarantined");
  EXPECT_NE(boom.error->message.find("SIGSEGV"), std::string::npos) << boom.error->message;
  EXPECT_TRUE(pool.submit("crash_setup.fine", {}).get().ok());
  EXPECT_TRUE(pool.submit("testkit.pid", {}).get().ok());
}

TEST(Faults, SetupThatNeverReturnsIsQuarantinedAfterTheSetupTimeout) {
  PoolOptions options = test::test_pool_options(2);
  options.plugin_paths.push_back(HANG_SETUP_PLUGIN);
  options.setup_timeout = std::chrono::milliseconds(300);
  const auto start = Clock::now();
  Pool pool(options);
  std::cout << "[ latency  ] pool ready despite a hanging setup after "
            << std::chrono::duration<double>(Clock::now() - start).count() * 1000 << " ms\n";
  TaskResult stuck = pool.submit("hang_setup.stuck", {}).get();
  expect_error(stuck, ErrorKind::plugin_error, "quarantined");
  EXPECT_NE(stuck.error->message.find("hung"), std::string::npos) << stuck.error->message;
  EXPECT_TRUE(pool.submit("hang_setup.fine", {}).get().ok());
  EXPECT_TRUE(pool.submit("testkit.pid", {}).get().ok());
}

TEST(Faults, WorkersAreRecycledAfterMaxTasks) {
  PoolOptions options = test::test_pool_options(1);
  options.max_tasks_per_worker = 3;
  Pool pool(options);
  std::vector<int> pids;
  for (const TaskResult& r : pool.map("testkit.pid", std::vector<Value>(9, Value::object())))
    pids.push_back(r.result.at("pid").get<int>());
  ASSERT_EQ(pids.size(), 9u);
  for (std::size_t i = 0; i < 9; ++i) EXPECT_EQ(pids[i], pids[i - i % 3]) << i;
  EXPECT_EQ(std::set<int>(pids.begin(), pids.end()).size(), 3u);
  const WorkerStats w = pool.stats().workers[0];
  EXPECT_GE(w.restarts, 2);
  EXPECT_NE(w.restart_reasons[0].find("recycled after 3 tasks"), std::string::npos);
}

}  // namespace
}  // namespace mathpool
