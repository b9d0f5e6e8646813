// The pool: plugin loading and its errors, setup once per worker, reuse across
// batches, fresh per-task state, crash containment, ordering and statistics.
#include <signal.h>

#include <chrono>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include <sys/syscall.h>

#include "mathpool/pool.hpp"
#include "test_support.hpp"

namespace mathpool {
namespace {

using test::test_pool_options;

std::string load_error(std::vector<std::filesystem::path> plugins) {
  PoolOptions options;
  options.workers = 1;
  options.default_plugin_paths = false;
  options.plugin_paths = std::move(plugins);
  try {
    Pool pool(options);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PoolPlugins, LoadsDeclaredAnalysesWithTheirDocumentation) {
  Pool pool(test_pool_options(1));
  const Value* sum = pool.find_analysis("example.sum");
  ASSERT_NE(sum, nullptr);
  EXPECT_EQ(sum->at("version"), "1.0.0");
  EXPECT_EQ(sum->at("params").size(), 2u);
  EXPECT_EQ(sum->at("params")[1].at("default"), "0");
  EXPECT_NE(pool.find_analysis("testkit.segfault"), nullptr);
  EXPECT_EQ(pool.find_analysis("no.such"), nullptr);
  EXPECT_EQ(pool.plugin_files().size(), 2u);
}

TEST(PoolPlugins, MissingFileIsNamed) {
  const std::string error = load_error({"/nonexistent/dir/plugin.so"});
  EXPECT_NE(error.find("/nonexistent/dir/plugin.so"), std::string::npos) << error;
  EXPECT_NE(error.find("no such file"), std::string::npos) << error;
}

TEST(PoolPlugins, FileThatIsNotASharedLibraryIsRefused) {
  test::TempDir dir;
  const auto file = dir.write("fake.so", "this is text, not ELF");
  const std::string error = load_error({file});
  EXPECT_NE(error.find("fake.so"), std::string::npos) << error;
  EXPECT_NE(error.find("not a loadable shared library"), std::string::npos) << error;
}

TEST(PoolPlugins, SharedLibraryWithoutEntryPointIsRefused) {
  const std::string error = load_error({NOT_A_PLUGIN});
  EXPECT_NE(error.find("not a mathpool plugin"), std::string::npos) << error;
}

TEST(PoolPlugins, MissingSymbolIsNamedWithTheFile) {
  const std::string error = load_error({MISSING_SYMBOL_PLUGIN});
  EXPECT_NE(error.find("missing_symbol"), std::string::npos) << error;
  EXPECT_NE(error.find("mathpool_test_function_nobody_defines"), std::string::npos) << error;
}

TEST(PoolPlugins, WrongApiVersionIsRefusedWithBothVersions) {
  const std::string error = load_error({WRONG_API_PLUGIN});
  EXPECT_NE(error.find("API version 999"), std::string::npos) << error;
  EXPECT_NE(error.find("supports version 2"), std::string::npos) << error;
}

// Plugin API version 2 (AnalysisRegistry, Analysis::check): a plugin built
// against version 1 is refused with both versions named.
TEST(PoolPlugins, APluginOfTheOldApiIsRefusedWithBothVersions) {
  const std::string error = load_error({OLD_API_PLUGIN});
  EXPECT_NE(error.find("API version 1,"), std::string::npos) << error;
  EXPECT_NE(error.find("supports version 2"), std::string::npos) << error;
}

TEST(PoolPlugins, DuplicateAnalysisNameIsRefused) {
  const std::string error = load_error({EXAMPLE_PLUGIN, DUPLICATE_PLUGIN});
  EXPECT_NE(error.find("analysis 'example.echo' is already provided by"), std::string::npos) << error;
}

TEST(PoolPlugins, DirectoryWritableByOthersIsRefused) {
  test::TempDir dir;
  std::filesystem::copy_file(TESTKIT_PLUGIN, dir.path() / "testkit.so");
  std::filesystem::permissions(dir.path(), std::filesystem::perms::others_write,
                               std::filesystem::perm_options::add);
  PoolOptions options = test_pool_options(1);
  options.plugin_paths = {dir.path()};
  try {
    Pool pool(options);
    FAIL() << "a world-writable plugin directory was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("writable by other users"), std::string::npos) << e.what();
  }
  options.allow_insecure_plugins = true;
  Pool pool(options);
  EXPECT_TRUE(pool.submit("testkit.pid", {}).get().ok());
}

TEST(Pool, SetupRunsOncePerWorkerAcrossTasksAndBatches) {
  Pool pool(test_pool_options(2));
  std::set<int> pids;
  for (int batch = 0; batch < 3; ++batch) {
    auto results = pool.map("testkit.setup_count", std::vector<Value>(25, Value::object()));
    for (const TaskResult& r : results) {
      ASSERT_TRUE(r.ok()) << r.error->message;
      EXPECT_EQ(r.result.at("setup_calls"), 1);
      pids.insert(r.result.at("pid").get<int>());
    }
  }
  EXPECT_EQ(pids.size(), 2u);
  const PoolStats stats = pool.stats();
  EXPECT_EQ(stats.batches, 3);
  EXPECT_EQ(stats.tasks_ok, 75);
}

TEST(Pool, WorkersAreReusedAcrossBatches) {
  Pool pool(test_pool_options(2));
  std::set<int> before;
  for (const auto& w : pool.stats().workers) before.insert(w.pid);
  std::set<int> seen;
  for (int batch = 0; batch < 4; ++batch)
    for (const TaskResult& r : pool.map("testkit.pid", std::vector<Value>(10, Value::object())))
      seen.insert(r.result.at("pid").get<int>());
  EXPECT_EQ(seen, before);
  for (const auto& w : pool.stats().workers) EXPECT_EQ(w.restarts, 0);
}

// Tasks see the host's environment as it was: nothing the pool might set
// for its workers (LD_BIND_NOW, once) leaks into it.
TEST(Pool, TasksSeeTheHostsEnvironmentWithoutTheWorkersBindNow) {
  ASSERT_EQ(std::getenv("LD_BIND_NOW"), nullptr) << "run this test without LD_BIND_NOW set";
  ::setenv("MATHPOOL_TEST_MARK", "seen", 1);
  Pool pool(test_pool_options(1));
  const TaskResult bind_now = pool.submit("testkit.env", {{"name", "LD_BIND_NOW"}}).get();
  ASSERT_TRUE(bind_now.ok()) << bind_now.error->message;
  EXPECT_TRUE(bind_now.result.at("value").is_null()) << bind_now.result.dump();
  const TaskResult mark = pool.submit("testkit.env", {{"name", "MATHPOOL_TEST_MARK"}}).get();
  ASSERT_TRUE(mark.ok());
  EXPECT_EQ(mark.result.at("value"), "seen");
  ::unsetenv("MATHPOOL_TEST_MARK");
}

TEST(Pool, PerTaskStateIsFresh) {
  Pool pool(test_pool_options(1));
  for (int n : {5, 1, 7, 2}) {
    TaskResult r = pool.submit("testkit.fresh", {{"n", n}}).get();
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.result.at("size"), n);
  }
}

TEST(Pool, ResultsComeBackInSubmissionOrder) {
  Pool pool(test_pool_options(2));
  std::vector<Value> params;
  for (int i = 0; i < 40; ++i) params.push_back({{"i", i}, {"ms", (i * 7) % 5}});
  auto results = pool.map("example.echo", params);
  ASSERT_EQ(results.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(results[std::size_t(i)].result.at("i"), i);
}

TEST(Pool, FullSocketBuffersBothWaysDoNotDeadlock) {
  // Big chunks of big messages fill the host->worker and worker->host socket
  // buffers at once; a host that blocked on writing would never read again.
  PoolOptions options = test_pool_options(2);
  options.chunk_size = 256;
  Pool pool(options);
  std::vector<TaskSpec> tasks(3000, {"example.echo", {{"blob", std::string(4096, 'x')}}});
  auto futures = pool.submit_all(std::move(tasks));
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready) << "deadlock";
    EXPECT_EQ(f.get().result.at("blob").get<std::string>().size(), 4096u);
  }
}

TEST(Pool, UnknownAnalysisIsAnInvalidParamsError) {
  Pool pool(test_pool_options(1));
  TaskResult r = pool.submit("no.such.analysis", {}).get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->kind, ErrorKind::invalid_params);
  EXPECT_NE(r.error->message.find("no.such.analysis"), std::string::npos);
}

TEST(Pool, WorkerKilledMidTaskGivesOneCrashedResultAndThePoolGoesOn) {
  PoolOptions options = test_pool_options(1);
  options.retries = 0;
  Pool pool(options);
  const int pid = pool.stats().workers[0].pid;
  auto victim = pool.submit("testkit.sleep", {{"ms", 10000}});
  auto after = pool.submit_all(std::vector<TaskSpec>(3, {"testkit.pid", Value::object()}));
  ASSERT_TRUE(test::wait_in_syscall(pid, SYS_clock_nanosleep)) << "the task never started sleeping";
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  TaskResult r = victim.get();
  EXPECT_EQ(r.status(), "crashed");
  EXPECT_EQ(r.error->kind, ErrorKind::crashed);
  EXPECT_NE(r.error->message.find("SIGKILL"), std::string::npos) << r.error->message;
  EXPECT_EQ(r.worker, pid);
  for (auto& future : after) {
    TaskResult a = future.get();
    ASSERT_TRUE(a.ok());
    EXPECT_NE(a.result.at("pid"), pid);
  }
  const PoolStats stats = pool.stats();
  EXPECT_EQ(stats.workers[0].restarts, 1);
  ASSERT_EQ(stats.workers[0].restart_reasons.size(), 1u);
  EXPECT_NE(stats.workers[0].restart_reasons[0].find("SIGKILL"), std::string::npos);
  EXPECT_EQ(stats.tasks_failed, 1);
  EXPECT_EQ(stats.tasks_ok, 3);
}

TEST(Pool, TaskOfAKilledWorkerIsRetriedOnAnotherWorker) {
  PoolOptions options = test_pool_options(1);
  options.retries = 1;
  Pool pool(options);
  const int pid = pool.stats().workers[0].pid;
  auto victim = pool.submit("testkit.sleep", {{"ms", 600}});
  // Killed once it runs, so its first attempt counts (a kill before it
  // started would be a death between tasks, refunded: attempts 1).
  ASSERT_TRUE(test::wait_in_syscall(pid, SYS_clock_nanosleep)) << "the task never started sleeping";
  ::kill(pid, SIGKILL);
  TaskResult r = victim.get();
  ASSERT_TRUE(r.ok()) << r.error->message;
  EXPECT_EQ(r.attempts, 2);
  EXPECT_NE(r.result.at("pid"), pid);
}

TEST(Pool, StatisticsDescribeTheWorkers) {
  Pool pool(test_pool_options(2));
  pool.map("example.echo", std::vector<Value>(10, Value::object()));
  pool.submit("testkit.throw_int", {}).get();
  const PoolStats stats = pool.stats();
  EXPECT_GT(stats.uptime_seconds, 0);
  EXPECT_EQ(stats.tasks_submitted, 11);
  EXPECT_EQ(stats.tasks_ok, 10);
  EXPECT_EQ(stats.tasks_failed, 1);
  ASSERT_EQ(stats.workers.size(), 2u);
  long total = 0;
  for (const WorkerStats& w : stats.workers) {
    EXPECT_GT(w.pid, 0);
    EXPECT_GT(w.setup_seconds, 0);
    total += w.tasks;
  }
  EXPECT_EQ(total, 11);
}

TEST(Pool, ShutdownWaitsForSubmittedTasksAndRefusesNewOnes) {
  Pool pool(test_pool_options(1));
  auto pending = pool.submit("testkit.sleep", {{"ms", 100}});
  pool.shutdown();
  EXPECT_TRUE(pending.get().ok());
  TaskResult late = pool.submit("example.echo", {}).get();
  EXPECT_FALSE(late.ok());
  pool.shutdown();  // idempotent
}

TEST(Pool, DefaultPoolIsReachableAndServes) {
  TaskResult r = default_pool().submit("example.echo", {{"hello", "world"}}).get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.result.at("hello"), "world");
  EXPECT_EQ(&default_pool(), &default_pool());
}

}  // namespace
}  // namespace mathpool
