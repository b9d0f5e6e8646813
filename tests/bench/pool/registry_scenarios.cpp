// The registry scenario of pool_bench: what a long-lived program pays to get
// an idle-released (parked) pool back, and what an idle pool costs while it
// waits (wake-ups of the host's threads and of the pool's processes).
#include <sys/syscall.h>

#include <mathpool/registry.hpp>

#include "bench_support.hpp"
#include "wakeups.hpp"

namespace bench {

namespace {

constexpr int kWorkers = 8;

bool gone(int pid) { return pid <= 0 || ::kill(pid, 0) != 0; }

// Parks the registry's idle pool and waits until its workers have exited.
void park_and_wait(mathpool::PoolRegistry& registry, mathpool::Pool& pool, const std::vector<int>& workers) {
  registry.park_idle();
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!pool.stats().parked || !std::all_of(workers.begin(), workers.end(), gone)) {
    if (Clock::now() > deadline) throw std::runtime_error("registry: the pool did not park");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

std::vector<int> worker_pids(const mathpool::PoolStats& stats) {
  std::vector<int> pids;
  for (const auto& w : stats.workers) pids.push_back(w.pid);
  return pids;
}

// Context switches per second of the host's threads (this thread and the
// benchmark's watchdog left out) and of `processes`, over `window`.
double wakeups_per_second(const std::vector<int>& processes, double window) {
  const std::vector<int> skip = {int(::syscall(SYS_gettid)), watchdog_tid.load()};
  auto count = [&] {
    return mathpool::wakeups::context_switches(getpid(), skip) + mathpool::wakeups::context_switches_of(processes);
  };
  const long before = count();
  std::this_thread::sleep_for(std::chrono::duration<double>(window));
  return double(count() - before) / window;
}

}  // namespace

void scenario_registry(const Settings& s) {
  const auto options = pool_options(kWorkers, mathpool::StartMode::zygote, POOL_BENCH_PLUGIN,
                                    std::vector<std::string>{"bench.light"});
  const std::vector<Value> one_task = {Value{{"iterations", 1}}};
  const double window = s.quick ? 0.2 : 1.0;

  mathpool::PoolRegistry registry;
  std::vector<double> reacquire, first_result, fresh_first_result, idle_leased, idle_parked;
  for (int r = 0; r < s.reps; ++r) {
    std::vector<int> processes;
    mathpool::Pool* pool = nullptr;
    {
      mathpool::PoolLease lease = registry.acquire(options);
      pool = &lease.pool();
      check_results(lease->map("bench.light", one_task), "registry");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the last replies settle
      const auto stats = lease->stats();
      processes = worker_pids(stats);
      processes.push_back(stats.template_pid);
      idle_leased.push_back(wakeups_per_second(processes, window));
    }
    park_and_wait(registry, *pool, std::vector<int>(processes.begin(), processes.end() - 1));
    idle_parked.push_back(wakeups_per_second({processes.back()}, window));

    const auto t = Clock::now();
    mathpool::PoolLease lease = registry.acquire(options);
    reacquire.push_back(seconds_since(t));
    check_results(lease->map("bench.light", one_task), "registry");
    first_result.push_back(seconds_since(t));

    // The alternative without a registry: a new pool, then its first result.
    const auto f = Clock::now();
    mathpool::Pool fresh(options);
    check_results(fresh.map("bench.light", one_task), "registry");
    fresh_first_result.push_back(seconds_since(f));
  }
  registry.shutdown();

  const std::string sc = "registry";
  const std::string n = fmt::format("{} workers", kWorkers);
  table.push_back({sc, "re-acquire an idle-released (parked) pool of " + n, reacquire, Unit::seconds,
                   Compare::none, "", {}, Goal::value_below, 2e-3, "≤ 2 ms"});
  table.push_back({sc, "new zygote pool of " + n + ": its first result", fresh_first_result});
  table.push_back({sc, "re-acquire a parked pool of " + n + ": its first result", first_result, Unit::seconds,
                   Compare::speedup, "new pool", fresh_first_result});
  table.push_back({sc, "idle wake-ups per second, leased pool of " + n + " (host threads, workers, template)",
                   idle_leased, Unit::count, Compare::none, "", {}, Goal::value_below, 0.5, "0"});
  table.push_back({sc, "idle wake-ups per second, parked pool (host threads, template)", idle_parked, Unit::count,
                   Compare::none, "", {}, Goal::value_below, 0.5, "0"});
  notes.push_back(fmt::format(
      "**registry**: a `PoolRegistry` pool of {0} zygote workers (`bench.light`, cheap setup). \"re-acquire\" is "
      "the wall time of `acquire()` for a pool parked by `park_idle()` (its workers exited, its template kept): "
      "it returns without waiting for workers, which the pool forks in the background. \"its first result\" adds "
      "one task through the pool, so it includes forking the workers; the reference builds a new `Pool` "
      "(template and {0} workers) and runs the same task. Wake-ups: voluntary plus involuntary context switches "
      "(/proc/PID/task/*/status) over {1} s of an idle pool, of every thread of this process (the measuring "
      "thread and the benchmark's watchdog left out) and of the pool's processes, per second.",
      kWorkers, window));
}

}  // namespace bench
