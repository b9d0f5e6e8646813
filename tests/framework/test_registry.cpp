// The pool registry and long-lived programs: reuse by options, idle parking
// that keeps the zygote template, a killed template, concurrent acquires,
// no wake-ups while idle, default options, and the real cost of setups.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <barrier>
#include <chrono>
#include <functional>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "host/config/options_value.hpp"
#include "mathpool/registry.hpp"
#include "mathpool/run.hpp"
#include "host/run/run_steps.hpp"
#include "test_support.hpp"
#include "wakeups.hpp"

namespace mathpool {
namespace {

using namespace std::chrono_literals;

PoolOptions options_for(int workers, StartMode start = StartMode::zygote) {
  PoolOptions options = test::test_pool_options(workers);
  options.start = start;
  return options;
}

// Polls `condition` every 5 ms for up to `limit`.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

bool process_exists(int pid) { return pid > 0 && ::kill(pid, 0) == 0; }

std::vector<int> worker_pids(const PoolStats& stats) {
  std::vector<int> pids;
  for (const WorkerStats& w : stats.workers) pids.push_back(w.pid);
  return pids;
}

// Options travel to other MPI ranks as a Value map and registry statistics
// print it: every field must survive the round trip.
TEST(OptionsValue, EveryFieldSurvivesTheRoundTrip) {
  PoolOptions options;
  options.workers = 3;
  options.start = StartMode::spawn;
  options.isolation = Isolation::task;
  options.task_timeout = std::chrono::milliseconds(1500);
  options.memory_limit = 1 << 30;
  options.max_tasks_per_worker = 7;
  options.retries = 4;
  options.setup_timeout = std::chrono::milliseconds(2500);
  options.chunk_size = 9;
  options.plugin_paths = {"/a/b", "c"};
  options.default_plugin_paths = false;
  options.allow_insecure_plugins = true;
  options.preload = std::vector<std::string>{"x.y", "z.w"};
  options.worker_program = "/opt/worker";
  EXPECT_TRUE(detail::options_from_value(detail::options_to_value(options)) == options);
  const PoolOptions defaults;
  EXPECT_TRUE(detail::options_from_value(detail::options_to_value(defaults)) == defaults);
  EXPECT_EQ(describe(options).substr(0, 44), "workers=3 start=spawn isolation=task task_ti") << describe(options);
  EXPECT_NE(describe(defaults).find("task_timeout=none"), std::string::npos) << describe(defaults);
  EXPECT_NE(describe(defaults).find("preload=all"), std::string::npos) << describe(defaults);

  Value broken = detail::options_to_value(options);
  broken["retries"] = "many";
  try {
    detail::options_from_value(broken);
    FAIL() << "malformed options were accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_config);
    EXPECT_NE(std::string(e.what()).find("malformed pool options"), std::string::npos) << e.what();
  }
}

TEST(Registry, EqualOptionsShareOnePool) {
  PoolRegistry registry;
  PoolLease first = registry.acquire(options_for(2));
  PoolLease second = registry.acquire(options_for(2));
  EXPECT_EQ(&first.pool(), &second.pool());
  EXPECT_TRUE(second->submit("example.echo", {{"x", 1}}).get().ok());
  const RegistryStats stats = registry.stats();
  EXPECT_EQ(stats.created, 1);
  EXPECT_EQ(stats.reused, 1);
  ASSERT_EQ(stats.pools.size(), 1u);
  EXPECT_EQ(stats.pools[0].leases, 2);
  EXPECT_EQ(stats.pools[0].state, RegisteredPoolState::leased);
  EXPECT_NE(stats.pools[0].options.find("workers=2 start=zygote"), std::string::npos) << stats.pools[0].options;
  EXPECT_EQ(stats.pools[0].pool.workers.size(), 2u);
  first.release();
  first.release();  // idempotent
  EXPECT_EQ(registry.stats().pools[0].leases, 1);
}

TEST(Registry, DifferentOptionsGetDistinctPools) {
  PoolRegistry registry;
  PoolLease one = registry.acquire(options_for(1));
  PoolLease two = registry.acquire(options_for(2));
  PoolOptions timed = options_for(1);
  timed.task_timeout = 5s;
  PoolLease three = registry.acquire(timed);
  EXPECT_NE(&one.pool(), &two.pool());
  EXPECT_NE(&one.pool(), &three.pool());
  EXPECT_EQ(one->size(), 1);
  EXPECT_EQ(two->size(), 2);
  EXPECT_EQ(registry.stats().created, 3);
  EXPECT_EQ(registry.stats().pools.size(), 3u);
}

// Released for longer than the idle timeout, a pool stops its workers and
// keeps its template; the next lease is the same pool, serving at once.
void idle_release_and_reacquire(StartMode start) {
  PoolRegistry registry(100ms);
  const PoolOptions options = options_for(2, start);
  Pool* pool = nullptr;
  std::vector<int> workers;
  int template_pid = 0;
  {
    PoolLease lease = registry.acquire(options);
    pool = &lease.pool();
    ASSERT_TRUE(lease->submit("example.echo", {{"x", 1}}).get().ok());
    const PoolStats stats = lease->stats();
    workers = worker_pids(stats);
    template_pid = stats.template_pid;
  }
  ASSERT_TRUE(eventually([&] { return registry.stats().pools.at(0).state == RegisteredPoolState::parked; }));
  for (int pid : workers) EXPECT_TRUE(eventually([&] { return !process_exists(pid); })) << "worker " << pid;
  const PoolStats parked = registry.stats().pools.at(0).pool;
  EXPECT_TRUE(parked.parked);
  for (const WorkerStats& w : parked.workers) {
    EXPECT_EQ(w.pid, 0);
    EXPECT_EQ(w.restarts, 0) << "parking is not a restart";
  }
  if (start == StartMode::zygote) {
    EXPECT_TRUE(process_exists(template_pid)) << "the template must survive parking";
    EXPECT_EQ(parked.template_pid, template_pid);
  }

  const auto t = std::chrono::steady_clock::now();
  PoolLease again = registry.acquire(options);
  EXPECT_LT(std::chrono::steady_clock::now() - t, 50ms) << "re-acquire must not wait for the workers";
  EXPECT_EQ(&again.pool(), pool);
  const TaskResult r = again->submit("testkit.pid", Value::object()).get();
  ASSERT_TRUE(r.ok()) << r.error->message;
  EXPECT_EQ(std::count(workers.begin(), workers.end(), r.result.at("pid").get<int>()), 0) << "a new worker";
  const PoolStats after = again->stats();
  EXPECT_FALSE(after.parked);
  if (start == StartMode::zygote) EXPECT_EQ(after.template_pid, template_pid) << "forked from the same template";
  const RegistryStats stats = registry.stats();
  EXPECT_EQ(stats.created, 1);
  EXPECT_EQ(stats.parked, 1);
}

TEST(Registry, IdlePoolIsParkedKeepingItsTemplateAndServesWhenReacquired) {
  idle_release_and_reacquire(StartMode::zygote);
}

TEST(Registry, IdleSpawnPoolIsParkedAndServesWhenReacquired) { idle_release_and_reacquire(StartMode::spawn); }

TEST(Registry, ALeasedPoolIsNeverParkedAndTasksWaitForParking) {
  PoolRegistry registry(50ms);
  PoolLease lease = registry.acquire(options_for(1));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(registry.stats().pools.at(0).state, RegisteredPoolState::leased);
  // A task still running when the lease goes: parking waits for it.
  auto running = lease->submit("testkit.sleep", {{"ms", 300}});
  Pool& pool = lease.pool();
  lease.release();
  registry.park_idle();
  EXPECT_TRUE(running.get().ok());
  ASSERT_TRUE(eventually([&] { return pool.stats().parked; }));
}

TEST(Registry, AKilledTemplateIsStartedAgainOnReacquire) {
  PoolRegistry registry;
  const PoolOptions options = options_for(2);
  int template_pid = 0;
  {
    PoolLease lease = registry.acquire(options);
    ASSERT_TRUE(lease->submit("example.echo", {{"x", 1}}).get().ok());
    template_pid = lease->stats().template_pid;
  }
  ASSERT_GT(template_pid, 0);
  registry.park_idle();
  ASSERT_TRUE(eventually([&] { return registry.stats().pools.at(0).pool.parked; }));
  ASSERT_EQ(::kill(template_pid, SIGKILL), 0);
  PoolLease lease = registry.acquire(options);
  std::vector<Value> params(20, Value{{"x", 1}});
  for (const TaskResult& r : lease->map("example.echo", params)) ASSERT_TRUE(r.ok()) << r.error->message;
  const PoolStats stats = lease->stats();
  EXPECT_GT(stats.template_pid, 0);
  EXPECT_NE(stats.template_pid, template_pid);
  EXPECT_TRUE(eventually([&] {
    const PoolStats now = lease->stats();
    return std::all_of(now.workers.begin(), now.workers.end(), [](const WorkerStats& w) { return w.pid > 0; });
  })) << "every worker starts again";
}

TEST(Registry, APoolThatStoppedServingIsReplaced) {
  PoolRegistry registry;
  Pool* first = nullptr;
  {
    PoolLease lease = registry.acquire(options_for(1));
    first = &lease.pool();
    lease->shutdown();
    PoolLease replaced = registry.acquire(options_for(1));
    EXPECT_NE(&replaced.pool(), first);
    EXPECT_TRUE(replaced->submit("example.echo", {{"x", 1}}).get().ok());
    EXPECT_FALSE(lease->submit("example.echo", {{"x", 1}}).get().ok()) << "the old lease's pool stays shut";
  }
  EXPECT_EQ(registry.stats().recreated, 1);
}

TEST(Registry, EightThreadsAcquiringAtOnceGetOnePool) {
  PoolRegistry registry;
  constexpr int kThreads = 8;
  std::barrier start(kThreads);
  std::vector<Pool*> pools(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      PoolLease lease = registry.acquire(options_for(2));
      pools[std::size_t(i)] = &lease.pool();
      EXPECT_TRUE(lease->submit("example.echo", {{"i", i}}).get().ok());
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(std::set<Pool*>(pools.begin(), pools.end()).size(), 1u);
  const RegistryStats stats = registry.stats();
  EXPECT_EQ(stats.created, 1);
  EXPECT_EQ(stats.reused, kThreads - 1);
  ASSERT_EQ(stats.pools.size(), 1u);
  EXPECT_EQ(stats.pools[0].leases, 0);
}

TEST(Registry, AfterShutdownAcquireThrowsAndHeldLeasesRefuseTasks) {
  PoolRegistry registry;
  PoolLease lease = registry.acquire(options_for(1));
  registry.shutdown();
  registry.shutdown();  // idempotent
  EXPECT_THROW(registry.acquire(options_for(1)), Error);
  const TaskResult r = lease->submit("example.echo", {{"x", 1}}).get();
  EXPECT_FALSE(r.ok());
  lease.release();
}

// Wake-ups of the host's threads (the caller's own left out) and of the
// pool's processes over `window`. A periodic timer anywhere shows in every
// window; a stray one-off event (the machine is shared) rarely twice, so the
// quietest of three windows is taken.
long quietest_wakeups(const std::vector<int>& pool_processes, std::chrono::milliseconds window) {
  const int self = int(::syscall(SYS_gettid));
  long fewest = -1;
  for (int attempt = 0; attempt < 3 && fewest != 0; ++attempt) {
    const long before = wakeups::context_switches(getpid(), {self}) + wakeups::context_switches_of(pool_processes);
    std::this_thread::sleep_for(window);
    const long after = wakeups::context_switches(getpid(), {self}) + wakeups::context_switches_of(pool_processes);
    fewest = fewest < 0 ? after - before : std::min(fewest, after - before);
  }
  return fewest;
}

TEST(Registry, AnIdlePoolDoesNotWakeUp) {
  PoolRegistry registry(200ms);
  PoolOptions options = options_for(2);
  options.task_timeout = 10s;  // deadlines exist only while a task runs
  PoolLease lease = registry.acquire(options);
  lease->map("example.echo", std::vector<Value>(100, Value{{"x", 1}}));
  std::this_thread::sleep_for(100ms);  // the last replies and sweeps settle
  PoolStats stats = lease->stats();
  std::vector<int> processes = worker_pids(stats);
  processes.push_back(stats.template_pid);
  ASSERT_GT(wakeups::context_switches_of(processes), 0) << "the counters cannot be read";
  EXPECT_EQ(quietest_wakeups(processes, 500ms), 0) << "leased, idle: host threads, workers or template woke up";

  Pool& pool = lease.pool();
  lease.release();
  ASSERT_TRUE(eventually([&] { return pool.stats().parked; }));
  ASSERT_TRUE(eventually([&] { return !process_exists(processes[0]) && !process_exists(processes[1]); }));
  EXPECT_EQ(quietest_wakeups({stats.template_pid}, 500ms), 0)
      << "parked: the host threads (registry, dispatcher) or the template woke up";
}

TEST(Registry, DefaultOptionsComeFromCodeOrEnvironment) {
  EXPECT_EQ(test::in_child([] {
              setenv("MATHPOOL_WORKERS", "3", 1);
              setenv("MATHPOOL_PLUGIN_PATH", EXAMPLE_PLUGIN, 1);
              PoolLease lease = default_registry().acquire();
              return lease->size() == 3 && lease->submit("example.echo", {{"x", 1}}).get().ok() ? 0 : 1;
            }),
            0);
  EXPECT_EQ(test::in_child([] {
              const PoolOptions options = options_for(1);
              set_default_pool_options(options);
              PoolLease by_default = default_registry().acquire();
              PoolLease by_options = default_registry().acquire(options);
              if (by_default->size() != 1 || &by_default.pool() != &by_options.pool()) return 1;
              return default_registry().stats().created == 1 ? 0 : 2;
            }),
            0);
  EXPECT_EQ(test::in_child([] {
              setenv("MATHPOOL_START", "sometimes", 1);
              try {
                default_registry().acquire();
                return 1;
              } catch (const Error& e) {
                return std::string(e.what()).find("MATHPOOL_START") != std::string::npos ? 0 : 2;
              }
            }),
            0);
}

TEST(Registry, AForkedChildGetsAClearError) {
  PoolRegistry registry;
  PoolLease lease = registry.acquire(options_for(1));
  EXPECT_EQ(test::in_child([&] {
              try {
                registry.acquire(options_for(1));
                return 1;
              } catch (const Error& e) {
                return std::string(e.what()).find("forked child") != std::string::npos ? 0 : 2;
              }
            }),
            0);
}

// Preloaded setups run once in the template; the others once per worker on
// a first task. Statistics report both.
TEST(SetupCost, PreloadedInTheTemplateOthersOnAFirstTaskInEachWorker) {
  PoolOptions options = options_for(2);
  options.preload = std::vector<std::string>{"example.sum"};
  Pool pool(options);
  for (const TaskResult& r : pool.map("testkit.setup_count", std::vector<Value>(40, Value::object())))
    ASSERT_TRUE(r.ok()) << r.error->message;
  ASSERT_TRUE(pool.submit("example.sum", {{"values", {1, 2}}}).get().ok());
  const PoolStats stats = pool.stats();
  const AnalysisStats& lazy = stats.analyses.at("testkit.setup_count");
  const AnalysisStats& preloaded = stats.analyses.at("example.sum");
  EXPECT_EQ(preloaded.setups, 1) << "once, in the template";
  std::set<int> ran_on;
  double on_tasks = 0;
  for (const WorkerStats& w : stats.workers) {
    if (w.task_setup_seconds > 0) ran_on.insert(w.pid);
    on_tasks += w.task_setup_seconds;
  }
  EXPECT_EQ(lazy.setups, long(ran_on.size())) << "once in each worker that ran it";
  EXPECT_GE(lazy.setups, 1);
  EXPECT_GT(lazy.setup_seconds, 0.0);
  EXPECT_NEAR(on_tasks, lazy.setup_seconds, 1e-9);
  EXPECT_EQ(stats.analyses.count("testkit.silent_setup_failure"), 0u) << "no setup for what nobody asked";
}

TEST(SetupCost, SpawnedWorkersEachRunThePreloadedSetups) {
  PoolOptions options = options_for(2, StartMode::spawn);
  options.preload = std::vector<std::string>{"testkit.setup_count"};
  Pool pool(options);
  ASSERT_TRUE(pool.submit("example.echo", {{"x", 1}}).get().ok());
  const PoolStats stats = pool.stats();
  EXPECT_EQ(stats.analyses.at("testkit.setup_count").setups, 2);
  for (const WorkerStats& w : stats.workers) EXPECT_EQ(w.task_setup_seconds, 0.0);
}

// A run sets up exactly the analyses its config names, nothing else.
TEST(SetupCost, ARunPreloadsExactlyItsConfigsAnalyses) {
  RunConfig config;
  config.pool = options_for(1);
  for (const char* analysis : {"example.echo", "testkit.setup_count", "example.echo"}) {
    config.analyses.emplace_back();
    config.analyses.back().analysis = analysis;
  }
  const PoolOptions options = pool_options_for(config, 10);
  ASSERT_TRUE(options.preload.has_value());
  EXPECT_EQ(std::set<std::string>(options.preload->begin(), options.preload->end()),
            (std::set<std::string>{"example.echo", "testkit.setup_count"}));
  Pool pool(options);
  const TaskResult r = pool.submit("testkit.setup_count", Value::object()).get();
  ASSERT_TRUE(r.ok()) << r.error->message;
  const PoolStats stats = pool.stats();
  EXPECT_EQ(stats.analyses.at("testkit.setup_count").setups, 1);
  EXPECT_EQ(stats.analyses.count("example.sum"), 0u) << "example.sum has a setup, but the config does not use it";
  EXPECT_EQ(stats.analyses.count("testkit.silent_setup_failure"), 0u);
}

}  // namespace
}  // namespace mathpool
