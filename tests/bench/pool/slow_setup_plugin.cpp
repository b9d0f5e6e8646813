// Benchmark plugin for pool_bench: analyses with a known setup cost and a
// known amount of CPU work per task.
//
// bench.work  setup: builds a 64 Ki-entry table (a few ms), then keeps
//             mixing it until the setup has used kSetupCpu (100 ms) of its
//             own thread's CPU time. So the setup costs >= 100 ms of CPU on
//             any machine, and N workers setting up at once on C cores take
//             about N/C * 100 ms of wall time, like a real table build would
//             (no sleeping: a sleep would overlap for free).
// bench.light the same task, with a cheap setup (a 256-entry table, microseconds).
//
// Task (both): params `ms` (float, default 0) = burn this much thread CPU time
// mixing the setup's table; `iterations` (integer, default 0) = run this many
// table-mixing steps. Result: {"checksum": ..., "iterations": steps done}.
//
// bench.fork_floor  the floor of isolation: task measured where it runs: forks
//             `children` (integer, default 100) children of this warm worker
//             that _exit(0) at once, reaping each (waitpid) before the next.
//             Result: {"mean_us": wall microseconds per child, "children": N}.
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>

#include <cstdint>
#include <memory>
#include <vector>

#include <mathpool/plugin.hpp>

namespace {

using Table = std::shared_ptr<const std::vector<std::uint64_t>>;

constexpr double kSetupCpuSeconds = 0.100;

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// `steps` rounds of table-driven mixing; the table size is a power of two.
std::uint64_t churn(const std::vector<std::uint64_t>& table, std::uint64_t state,
                    std::int64_t steps) {
  const std::size_t mask = table.size() - 1;
  for (std::int64_t i = 0; i < steps; ++i) state = mix(state ^ table[state & mask]);
  return state;
}

Table build_table(std::size_t size, double min_cpu_seconds) {
  const double start = thread_cpu_seconds();
  auto table = std::make_shared<std::vector<std::uint64_t>>(size);
  for (std::size_t i = 0; i < size; ++i) (*table)[i] = mix(i + 1);
  // Keep refining the table until the CPU budget is spent.
  std::uint64_t state = 1;
  while (thread_cpu_seconds() - start < min_cpu_seconds) {
    state = churn(*table, state, 20000);
    (*table)[state & (size - 1)] ^= state;
  }
  return table;
}

mathpool::Value run_work(const mathpool::TaskContext& task) {
  const auto& table = *task.setup_state<Table>();
  const auto& params = task.params();
  double ms = 0;
  if (params.has("ms")) {
    if (!params.at("ms").is_number()) throw mathpool::InvalidParams("parameter 'ms' must be a number");
    ms = params.at("ms").get<double>();
  }
  const std::int64_t iterations = params.integer("iterations", 0);
  if (ms < 0 || iterations < 0)
    throw mathpool::InvalidParams("'ms' and 'iterations' must not be negative");
  std::uint64_t state = 0x9e3779b97f4a7c15ULL;
  std::int64_t done = 0;
  if (iterations > 0) {
    state = churn(table, state, iterations);
    done += iterations;
  }
  if (ms > 0) {
    const double start = thread_cpu_seconds();
    constexpr std::int64_t kStep = 2000;  // about 10 us between clock reads
    while (thread_cpu_seconds() - start < ms / 1000.0) {
      state = churn(table, state, kStep);
      done += kStep;
    }
  }
  return mathpool::Value{{"checksum", state}, {"iterations", done}};
}

mathpool::Value run_fork_floor(const mathpool::TaskContext& task) {
  const std::int64_t children = task.params().integer("children", 100);
  if (children < 1) throw mathpool::InvalidParams("'children' must be at least 1");
  const auto start = std::chrono::steady_clock::now();
  for (std::int64_t i = 0; i < children; ++i) {
    const pid_t child = fork();
    if (child < 0) throw std::runtime_error("fork failed");
    if (child == 0) _exit(0);
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status))
      throw std::runtime_error("waitpid failed");
  }
  const std::chrono::duration<double, std::micro> took = std::chrono::steady_clock::now() - start;
  return mathpool::Value{{"mean_us", took.count() / double(children)}, {"children", children}};
}

const std::vector<mathpool::ParamDoc> kParams = {
    {"ms", "float", "0", "thread CPU time to burn, in milliseconds"},
    {"iterations", "integer", "0", "table-mixing steps to run (before the ms part)"}};
const std::vector<mathpool::FieldDoc> kResults = {
    {"checksum", "integer", "the final mixing state"},
    {"iterations", "integer", "mixing steps done"}};

}  // namespace

MATHPOOL_PLUGIN("bench", "1.0.0") {
  registry.add({
      .name = "bench.work",
      .version = "1.0.0",
      .description = "Fixed CPU work per task; setup uses >= 100 ms of CPU (table build)",
      .params = kParams,
      .results = kResults,
      .open_params = false,
      .setup = [] { return std::any(build_table(std::size_t{1} << 16, kSetupCpuSeconds)); },
      .run = run_work,
  });
  registry.add({
      .name = "bench.light",
      .version = "1.0.0",
      .description = "Fixed CPU work per task; cheap setup (a small table)",
      .params = kParams,
      .results = kResults,
      .open_params = false,
      .setup = [] { return std::any(build_table(256, 0.0)); },
      .run = run_work,
  });
  registry.add({
      .name = "bench.fork_floor",
      .version = "1.0.0",
      .description = "Forks children of this worker that exit at once, reaping each: mean microseconds per child",
      .params = {{"children", "integer", "100", "children to fork, one at a time"}},
      .results = {{"mean_us", "float", "wall microseconds per fork, exit and reap"},
                  {"children", "integer", "children forked"}},
      .open_params = false,
      .run = run_fork_floor,
  });
}
