// pool_bench: the pool's performance figures as ratios measured in one run.
//
//   pool_bench            all scenarios, 11 repetitions each (a minute or two)
//   pool_bench --quick    smoke mode: 3 repetitions, smaller sizes (seconds)
//   pool_bench --reps N   N repetitions (at least 3)
//   pool_bench --only S   only scenario S (repeatable): reuse start overhead scaling lfsr-12 e2e
//                         volume hostcost sweep16 oneshot isolation registry mpi
//   pool_bench --no-python  leave out the Python rows (e.g. to profile)
//   pool_bench --quiet-wait S  before each scenario wait up to S seconds (default
//                 120, 0 with --quick) for other processes to leave the CPUs idle
//
// Scenarios (see the notes printed under the table):
//   reuse     the seeds' shape: 8 workers, 5 batches of 20 tasks, setup >= 100 ms
//   start     time until N workers are ready, spawn vs zygote, cheap vs expensive setup
//   overhead  per-task cost of example.echo, unchunked and chunked, vs a direct
//             in-process call and vs Python's multiprocessing Pool
//   scaling   one vs two workers on CPU-bound LFSR enumeration; host CPU use
//   lfsr-12   lfsr-seq's repeated 12-bit analysis, first and second run
//   e2e       `mathpool run` of 20,000 echo tasks vs Python Pool.map(chunksize=1)
//   volume    `mathpool run` of 1M echo tasks vs Python Pool.imap(chunksize=1000); host memory at 1M and 10M
//   hostcost  the same 1M echo run vs record_floor (the same lines by a minimal program); the
//             host's own CPU share and CPU per task from the kernel's accounting of it
//   sweep16   every degree-16 register (lfsr.cycles), 1 vs 2 workers, quiet and beside a busy
//             process, against the tasks' own time; the host's CPU share
//   oneshot   a whole `mathpool run` of four small registers against `mathpool --help`
//   isolation per-task cost of isolation: task next to isolation: worker and the fork floors
//   registry  re-acquiring an idle-released pool of 8 workers; wake-ups of an idle pool
//   mpi       (MPI builds) start-up of `mathpool run --mpi`, rank 0 feeding rate, degree-16 sweep
//
// After the table: a projection from this run's figures (hostcost, sweep16): the tasks
// per second one host can feed, and the cores at which a degree-16 sweep saturates it.
//
// Every figure is the median of the repetitions with a 95% confidence interval
// for the median from order statistics (binomial, distribution-free); ratios
// carry a 95% bootstrap interval. Variants of a scenario are interleaved
// repetition by repetition so drift hits them alike. Exit status: 0 when every
// scenario ran (targets may be missed), 1 on an error.
#include <sys/syscall.h>

#include "bench_support.hpp"

namespace bench {
// Scenarios in volume_scenarios.cpp.
void scenario_volume(const Settings& s);
void scenario_sweep16(const Settings& s);
void scenario_oneshot(const Settings& s);
void scenario_isolation(const Settings& s);
void scenario_hostcost(const Settings& s);  // host_cost_scenarios.cpp
void print_projection(std::FILE* out);      // host_cost_scenarios.cpp
void scenario_registry(const Settings& s);  // registry_scenarios.cpp
#ifdef POOL_BENCH_MPIRUN
void scenario_mpi(const Settings& s);
#endif
}  // namespace bench

namespace {

using namespace bench;

// ---- scenarios --------------------------------------------------------------

// The seeds' shape: 8 workers, 5 batches of 20 tasks, a setup of >= 100 ms.
void scenario_reuse(const Settings& s) {
  constexpr int kWorkers = 8, kBatches = 5, kTasks = 20;
  const double task_ms = 5;
  const int cores = available_cores();
  const std::vector<Value> batch(kTasks, Value{{"ms", task_ms}});
  using mathpool::StartMode;

  auto run_batches = [&](mathpool::Pool& pool) { check_results(pool.map("bench.work", batch), "reuse"); };
  auto new_pool_per_batch = [&](StartMode mode) {
    const auto t = Clock::now();
    for (int b = 0; b < kBatches; ++b) {
      mathpool::Pool pool(pool_options(kWorkers, mode, POOL_BENCH_PLUGIN));
      run_batches(pool);
    }
    return seconds_since(t);
  };
  auto persistent = [&](StartMode mode) {
    const auto t = Clock::now();
    {
      mathpool::Pool pool(pool_options(kWorkers, mode, POOL_BENCH_PLUGIN));
      for (int b = 0; b < kBatches; ++b) run_batches(pool);
    }
    return seconds_since(t);
  };
  // The ideal: the setup once in this process, then each batch's tasks on as
  // many threads as there are cores, no processes, no messages.
  InProcessPlugin plugin(POOL_BENCH_PLUGIN);
  const auto& work = plugin.find("bench.work");
  auto ideal = [&] {
    const auto t = Clock::now();
    const std::any state = InProcessPlugin::setup(work);
    for (int b = 0; b < kBatches; ++b) {
      std::atomic<int> next{0};
      std::vector<std::thread> threads;
      for (int c = 0; c < cores; ++c)
        threads.emplace_back([&] {
          for (int i; (i = next++) < kTasks;) InProcessPlugin::run(work, batch[std::size_t(i)], state);
        });
      for (auto& th : threads) th.join();
    }
    return seconds_since(t);
  };

  std::vector<double> t_ideal, t_new_spawn, t_new_zygote, t_spawn, t_zygote;
  for (int r = 0; r < s.reps; ++r) {
    t_ideal.push_back(ideal());
    t_zygote.push_back(persistent(StartMode::zygote));
    t_spawn.push_back(persistent(StartMode::spawn));
    t_new_zygote.push_back(new_pool_per_batch(StartMode::zygote));
    if (!s.quick) t_new_spawn.push_back(new_pool_per_batch(StartMode::spawn));  // 4+ s each
  }
  const std::string sc = "reuse";
  table.push_back({sc, "ideal: setup once + compute (in-process, threads = cores)", t_ideal});
  if (!s.quick)
    table.push_back({sc, "new pool per batch (spawn)", t_new_spawn, Unit::seconds, Compare::slowdown, "ideal", t_ideal});
  table.push_back({sc, "new pool per batch (zygote)", t_new_zygote, Unit::seconds, Compare::slowdown, "ideal", t_ideal});
  table.push_back({sc, "persistent spawn pool", t_spawn, Unit::seconds, Compare::slowdown, "ideal", t_ideal});
  table.push_back({sc, "persistent zygote pool", t_zygote, Unit::seconds, Compare::slowdown, "ideal",
                   t_ideal, Goal::ratio_at_most, 1.05, "≤ 1.05× ideal"});
  notes.push_back(fmt::format(
      "**reuse**: {} workers, {} batches of {} `bench.work` tasks of {} ms CPU each, setup >= 100 ms "
      "CPU per process that runs it; wall time from pool creation to pool destruction. "
      "The ideal runs the setup once and each batch on {} threads (this machine's cores) in one process.",
      kWorkers, kBatches, kTasks, task_ms, cores));
}

// Time until N workers are ready, and a single worker's start (a replacement).
void scenario_start(const Settings& s) {
  using mathpool::StartMode;
  constexpr int kWorkers = 8;
  struct Variant {
    StartMode mode;
    const char* analysis;  // bench.light: cheap setup; bench.work: >= 100 ms
  };
  auto pool_ready = [&](Variant v) {
    const auto t = Clock::now();
    mathpool::Pool pool(pool_options(kWorkers, v.mode, POOL_BENCH_PLUGIN,
                                     std::vector<std::string>{v.analysis}));
    const double seconds = seconds_since(t);
    return seconds;  // the pool's shutdown is not timed
  };
  // A worker's own start, seen by the host (WorkerStats::setup_seconds: from
  // start request to its "ready"), over replacements of a recycled worker.
  auto replacement = [&](Variant v) {
    auto options = pool_options(1, v.mode, POOL_BENCH_PLUGIN, std::vector<std::string>{v.analysis});
    options.max_tasks_per_worker = 1;
    mathpool::Pool pool(options);
    std::vector<double> samples;
    for (int r = 0; r < s.reps; ++r) {
      check_results(pool.map(v.analysis, {Value{{"iterations", 1}}}), "start");
      const auto deadline = Clock::now() + std::chrono::seconds(10);
      for (;;) {
        const auto stats = pool.stats().workers.at(0);
        if (stats.restarts == r + 1 && stats.pid != 0) {
          samples.push_back(stats.setup_seconds);
          break;
        }
        if (Clock::now() > deadline) throw std::runtime_error("start: replacement worker not ready");
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
    return samples;
  };
  const Variant spawn_cheap{StartMode::spawn, "bench.light"}, zygote_cheap{StartMode::zygote, "bench.light"},
      spawn_dear{StartMode::spawn, "bench.work"}, zygote_dear{StartMode::zygote, "bench.work"};
  std::vector<double> sc_, zc_, se_, ze_;
  for (int r = 0; r < s.reps; ++r) {
    sc_.push_back(pool_ready(spawn_cheap));
    zc_.push_back(pool_ready(zygote_cheap));
    se_.push_back(pool_ready(spawn_dear));
    ze_.push_back(pool_ready(zygote_dear));
  }
  const std::string sc = "start";
  const std::string n = fmt::format("{} workers ready", kWorkers);
  table.push_back({sc, n + ", cheap setup, spawn", sc_});
  table.push_back({sc, n + ", cheap setup, zygote", zc_, Unit::seconds, Compare::speedup, "spawn, cheap", sc_});
  table.push_back({sc, n + ", 100 ms setup, spawn", se_});
  table.push_back({sc, n + ", 100 ms setup, zygote", ze_, Unit::seconds, Compare::speedup, "spawn, 100 ms", se_});
  const auto r_sc = replacement(spawn_cheap), r_zc = replacement(zygote_cheap),
             r_se = replacement(spawn_dear), r_ze = replacement(zygote_dear);
  table.push_back({sc, "one worker ready, cheap setup, spawn", r_sc});
  table.push_back({sc, "one worker ready, cheap setup, zygote", r_zc, Unit::seconds, Compare::speedup,
                   "spawn, cheap", r_sc, Goal::value_below, 1e-3, "< 1 ms"});
  table.push_back({sc, "one worker ready, 100 ms setup, spawn", r_se});
  table.push_back({sc, "one worker ready, 100 ms setup, zygote", r_ze, Unit::seconds, Compare::speedup,
                   "spawn, 100 ms", r_se, Goal::value_below, 1e-3, "< 1 ms"});
  notes.push_back(fmt::format(
      "**start**: \"{0} workers ready\" is the wall time of the Pool constructor ({0} workers; "
      "`preload` names the one analysis whose setup runs at start: `bench.light` (cheap) or "
      "`bench.work` (>= 100 ms CPU)); zygote includes starting the template, which runs the setup once. "
      "\"one worker ready\" is `WorkerStats::setup_seconds` of a worker replacing one recycled after "
      "each task (`max_tasks_per_worker = 1`): from the host's start request to the worker's ready message.",
      kWorkers));
}

// Per-task cost of example.echo through the pool vs direct and vs Python.
void scenario_overhead(const Settings& s) {
  using mathpool::StartMode;
  const int n = s.quick ? 5000 : 20000;
  std::vector<Value> params;
  for (int i = 0; i < n; ++i) params.push_back({{"x", i}, {"name", "task"}});

  auto make = [&](int chunk) {
    auto options = pool_options(2, StartMode::zygote, POOL_BENCH_EXAMPLE_PLUGIN);
    options.chunk_size = chunk;
    auto pool = std::make_unique<mathpool::Pool>(options);
    check_results(pool->map("example.echo", std::vector<Value>(params.begin(), params.begin() + 1000)), "warm-up");
    return pool;
  };
  auto unchunked = make(1), chunked = make(0);
  std::vector<double> t_un, t_ch, cpu_un, cpu_ch, cs_un, cs_ch, t_direct;
  auto measure = [&](mathpool::Pool& pool, std::vector<double>& times, std::vector<double>& cpu,
                     std::vector<double>& switches) {
    std::vector<Value> copy = params;
    const long s0 = self_context_switches();
    const double c0 = self_cpu_seconds();
    const auto t = Clock::now();
    std::vector<mathpool::TaskResult> results = pool.map("example.echo", std::move(copy));
    const double wall = seconds_since(t);
    const double host_cpu = self_cpu_seconds() - c0;
    switches.push_back(double(self_context_switches() - s0) / n);
    check_results(results, "overhead");
    if (results.back().result != params.back()) throw std::runtime_error("overhead: echo mismatch");
    times.push_back(wall / n);
    cpu.push_back(100 * host_cpu / wall);
  };
  InProcessPlugin plugin(POOL_BENCH_EXAMPLE_PLUGIN);
  const auto& echo = plugin.find("example.echo");
  const std::any no_state;
  for (int r = 0; r < s.reps; ++r) {
    measure(*unchunked, t_un, cpu_un, cs_un);
    measure(*chunked, t_ch, cpu_ch, cs_ch);
    std::vector<Value> out;
    out.reserve(params.size());
    const auto t = Clock::now();
    for (const Value& p : params) out.push_back(InProcessPlugin::run(echo, p, no_state));
    t_direct.push_back(seconds_since(t) / n);
  }
  unchunked.reset();
  chunked.reset();
  const std::string sc = "overhead";
  table.push_back({sc, "direct in-process call of example.echo", t_direct});
  std::vector<double> py1, pyk;
  constexpr int kLargeChunk = 1000;
  if (have_python()) {
    py1 = python_overhead(n, s.reps, 1);
    pyk = python_overhead(n, s.reps, kLargeChunk);
    table.push_back({sc, "Python Pool.map, chunksize=1", py1, Unit::seconds, Compare::slowdown, "direct", t_direct});
    table.push_back({sc, fmt::format("Python Pool.map, chunksize={}", kLargeChunk), pyk, Unit::seconds,
                     Compare::slowdown, "direct", t_direct});
  }
  Row un{sc, "mathpool, chunk_size=1 (unchunked)", t_un, Unit::seconds, Compare::slowdown, "direct", t_direct,
         Goal::value_below, 10e-6, "< 10 µs"};
  Row ch{sc, "mathpool, chunk_size=0 (automatic)", t_ch, Unit::seconds, Compare::slowdown, "direct", t_direct,
         Goal::value_below, 0.5e-6, "< 0.5 µs"};
  table.push_back(un);
  table.push_back(ch);
  if (have_python()) {
    table.push_back({sc, "mathpool, chunk_size=1 (unchunked)", t_un, Unit::seconds, Compare::speedup,
                     "Python chunksize=1", py1});
    table.push_back({sc, "mathpool, chunk_size=0 (automatic)", t_ch, Unit::seconds, Compare::speedup,
                     fmt::format("Python chunksize={}", kLargeChunk), pyk});
  }
  table.push_back({"host CPU", "during echo map, chunk_size=1 (% of one core)", cpu_un, Unit::percent});
  table.push_back({"host CPU", "during echo map, chunk_size=0 (% of one core)", cpu_ch, Unit::percent});
  table.push_back({"host CPU", "context switches per task, echo, chunk_size=1", cs_un, Unit::count});
  table.push_back({"host CPU", "context switches per task, echo, chunk_size=0", cs_ch, Unit::count});
  notes.push_back(fmt::format(
      "**overhead**: wall time of `Pool::map` of {} `example.echo` tasks (params `{{\"x\": i, \"name\": "
      "\"task\"}}`) on a warm 2-worker zygote pool (one map), divided by the task count; the direct call runs the "
      "plugin's echo in this process (dlopen). Python: `multiprocessing` fork context, `Pool(2).map` of "
      "an identity function over `{{\"x\": i}}`, {} tasks, warm pool. Host CPU: `getrusage(RUSAGE_SELF)` "
      "of this process (all its threads) over the map, as a share of the map's wall time; context "
      "switches: `ru_nvcsw + ru_nivcsw` of this process over the map, per task.",
      n, n));
}

// One vs two workers on CPU-bound LFSR enumeration, and what the host uses.
void scenario_scaling(const Settings& s) {
  using mathpool::StartMode;
  const int n = s.quick ? 6 : 24;
  // x^22 + x + 1 (primitive) by enumeration: 2^22 states, about 10 ms.
  std::vector<int> coefficients(22, 0);
  coefficients[0] = coefficients[1] = 1;
  const Value task{{"field", 2}, {"coefficients", coefficients}, {"method", "enumerate"}};
  const std::vector<Value> params(std::size_t(n), task);
  auto make = [&](int workers) {
    auto pool = std::make_unique<mathpool::Pool>(
        pool_options(workers, StartMode::zygote, POOL_BENCH_LFSR_PLUGIN, std::vector<std::string>{"lfsr.cycles"}));
    check_results(pool->map("lfsr.cycles", std::vector<Value>(std::size_t(workers) * 2, task)), "warm-up");
    return pool;
  };
  auto one = make(1), two = make(2);
  InProcessPlugin plugin(POOL_BENCH_LFSR_PLUGIN);
  const auto& cycles = plugin.find("lfsr.cycles");
  const std::any state = InProcessPlugin::setup(cycles);
  InProcessPlugin::run(cycles, task, state);  // warm
  std::vector<double> t1, t2, td, td2, cpu1, cpu2;
  auto measure = [&](mathpool::Pool& pool, std::vector<double>& times, std::vector<double>& cpu) {
    const double c0 = self_cpu_seconds();
    const auto t = Clock::now();
    check_results(pool.map("lfsr.cycles", params), "scaling");
    const double wall = seconds_since(t);
    times.push_back(wall);
    cpu.push_back(100 * (self_cpu_seconds() - c0) / wall);
  };
  for (int r = 0; r < s.reps; ++r) {
    measure(*one, t1, cpu1);
    measure(*two, t2, cpu2);
    const auto t = Clock::now();
    for (const Value& p : params) InProcessPlugin::run(cycles, p, state);
    td.push_back(seconds_since(t));
    // What two cores give right now: the same tasks on two threads, no pool.
    const auto t2 = Clock::now();
    std::atomic<int> next{0};
    std::vector<std::thread> threads;
    for (int c = 0; c < 2; ++c)
      threads.emplace_back([&] {
        for (int i; (i = next++) < n;) InProcessPlugin::run(cycles, params[std::size_t(i)], state);
      });
    for (auto& th : threads) th.join();
    td2.push_back(seconds_since(t2));
  }
  const std::string sc = "scaling";
  table.push_back({sc, "in-process, one thread (direct calls)", td});
  table.push_back({sc, "in-process, two threads (the machine's parallel capacity)", td2, Unit::seconds,
                   Compare::speedup, "one thread", td});
  table.push_back({sc, "1 worker", t1, Unit::seconds, Compare::slowdown, "in-process", td});
  table.push_back({sc, "2 workers", t2, Unit::seconds, Compare::speedup, "1 worker", t1, Goal::ratio_at_least,
                   1.9, "≥ 1.9× faster"});
  table.push_back({sc, "2 workers", t2, Unit::seconds, Compare::slowdown, "in-process, two threads", td2});
  table.push_back({"host CPU", "during CPU-bound map, 1 worker (% of one core)", cpu1, Unit::percent});
  table.push_back({"host CPU", "during CPU-bound map, 2 workers (% of one core)", cpu2, Unit::percent});
  notes.push_back(fmt::format(
      "**scaling**: `Pool::map` of {} `lfsr.cycles` tasks (x^22 + x + 1 over GF(2), `method: enumerate`, "
      "2^22 states each) on warm zygote pools of 1 and 2 workers, on {} cores shared with the host.",
      n, available_cores()));
}

// lfsr-seq's repeated analysis: the full state space of a 12-bit register.
void scenario_lfsr12(const Settings& s) {
  using mathpool::StartMode;
  // x^12 + x^6 + x^4 + x + 1 (primitive): c0, c1, c4, c6 = 1.
  std::vector<int> coefficients(12, 0);
  for (int i : {0, 1, 4, 6}) coefficients[std::size_t(i)] = 1;
  const Value task{{"field", 2}, {"coefficients", coefficients}, {"list_cycles", true}};
  std::vector<double> first, second;
  for (int r = 0; r < s.reps; ++r) {
    const auto t = Clock::now();
    mathpool::Pool pool(pool_options(4, StartMode::zygote, POOL_BENCH_LFSR_PLUGIN, std::vector<std::string>{"lfsr.cycles"}));
    auto a = pool.map("lfsr.cycles", {task});
    first.push_back(seconds_since(t));
    const auto t2 = Clock::now();
    auto b = pool.map("lfsr.cycles", {task});
    second.push_back(seconds_since(t2));
    check_results(a, "lfsr-12");
    check_results(b, "lfsr-12");
    if (a[0].result.at("states") != 4096 || a[0].result.at("cycle_list").size() != 2 ||
        a[0].result != b[0].result)
      throw std::runtime_error("lfsr-12: unexpected result " + a[0].result.dump().substr(0, 200));
  }
  const std::string sc = "lfsr-12";
  table.push_back({sc, "first run, 4 workers, incl. pool creation", first, Unit::seconds, Compare::speedup,
                   "lfsr-seq first run 1.417 s", {1.417}});
  table.push_back({sc, "second run, same pool", second, Unit::seconds, Compare::speedup,
                   "lfsr-seq reused 1.276 s", {1.276}, Goal::ratio_at_least, 100, "≥ 100× faster"});
  notes.push_back(
      "**lfsr-12**: `lfsr.cycles` of x^12 + x^6 + x^4 + x + 1 over GF(2) with `list_cycles: true` "
      "(all 4096 states listed by cycle), as lfsr-seq's 12-bit full state-space map with 4 workers. "
      "First run: Pool constructor (zygote template start, lfsr plugin load, its (lazy) factor-cache setup, "
      "4 forks) plus the task; second run: the same task on the same pool. The lfsr-seq figures are "
      "its published ones (lfsr-seq's persistent-pool change, 4 workers), not measured here.");
}

// `mathpool run` of N echo tasks vs Python Pool.map(chunksize=1), whole processes.
void scenario_e2e(const Settings& s) {
  const int n = s.quick ? 5000 : 20000;
  TempDir dir;
  {
    std::ofstream config(dir.path / "echo.yaml");
    config << "pool: {workers: 2}\noutput: mathpool.jsonl\nanalyses:\n  - name: echo\n"
              "    analysis: example.echo\n    sweep:\n      x: {range: [0, " << n << "]}\n";
  }
  const std::vector<std::string> mathpool_cmd = {POOL_BENCH_MATHPOOL, "run", "--force", "--quiet", (dir.path / "echo.yaml").string(),
                                                 "--plugin-path", POOL_BENCH_EXAMPLE_PLUGIN};
  const std::vector<std::string> python_cmd = {POOL_BENCH_PYTHON, POOL_BENCH_PY_SCRIPT, "e2e",
                                               std::to_string(n), (dir.path / "python.jsonl").string()};
  auto count_lines = [](const fs::path& file) {
    std::ifstream in(file);
    return std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n');
  };
  std::vector<double> tm, tp;
  for (int r = 0; r < s.reps; ++r) {
    tm.push_back(time_command(mathpool_cmd));
    if (have_python()) tp.push_back(time_command(python_cmd));
  }
  if (count_lines(dir.path / "mathpool.jsonl") != n)
    throw std::runtime_error("e2e: mathpool run wrote the wrong number of records");
  const std::string sc = "e2e";
  const std::string what = fmt::format("{} echo tasks, 2 workers", n);
  if (have_python()) {
    table.push_back({sc, "Python: interpreter + Pool(2).map(chunksize=1) + JSON lines, " + what, tp});
    table.push_back({sc, "`mathpool run` (the command), " + what, tm, Unit::seconds, Compare::speedup, "Python",
                     tp, Goal::ratio_at_least, 10, "≥ 10× faster"});
  } else {
    table.push_back({sc, "`mathpool run` (the command), " + what, tm});
  }
  notes.push_back(fmt::format(
      "**e2e**: whole wall time from process start to exit. mathpool: `mathpool run` of a config "
      "with a sweep `x: {{range: [0, {}]}}` over `example.echo`, `pool: {{workers: 2}}` (zygote), records to a file. "
      "Python: `python3 py_pool_bench.py e2e`: interpreter start, fork-context `Pool(2)`, "
      "`map(identity, [{{\"x\": i}}...], chunksize=1)`, records written as JSON lines.",
      n));
}

// CPU time the whole machine spent busy, from /proc/stat (all cores), seconds.
double machine_busy_seconds() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return (user + nice + system + irq + softirq) / double(sysconf(_SC_CLK_TCK));
}

// CPU time of this process and of its reaped children (workers, commands).
double own_cpu_seconds() {
  double total = 0;
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage u{};
    getrusage(who, &u);
    total += double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
             1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  }
  return total;
}

// Waits (at most `limit`) until other processes use under 0.15 cores over two
// consecutive half-second windows; returns the seconds waited.
double wait_for_quiet(double limit) {
  const auto start = Clock::now();
  int quiet = 0;
  while (quiet < 2 && seconds_since(start) < limit) {
    const double b0 = machine_busy_seconds(), o0 = own_cpu_seconds();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const double others = (machine_busy_seconds() - b0) - (own_cpu_seconds() - o0);
    quiet = others / 0.5 < 0.15 ? quiet + 1 : 0;
  }
  return seconds_since(start);
}

std::string machine_description() {
  std::string model;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  utsname u{};
  uname(&u);
  return fmt::format("{} cores available ({}), Linux {} {}", available_cores(),
                     model.empty() ? "unknown CPU" : model, u.release, u.machine);
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      settings.quick = true;
      settings.reps = 3;
      settings.quiet_wait = 0;
    } else if (arg == "--quiet-wait" && i + 1 < argc) {
      settings.quiet_wait = std::atof(argv[++i]);
    } else if (arg == "--no-python") {
      python_disabled = true;
    } else if (arg == "--only" && i + 1 < argc) {
      settings.only.push_back(argv[++i]);
    } else if (arg == "--reps" && i + 1 < argc) {
      settings.reps = std::max(3, std::atoi(argv[++i]));
    } else {
      fmt::print(stderr, "usage: pool_bench [--quick] [--reps N] [--only SCENARIO]... [--no-python] [--quiet-wait SECONDS]\n");
      return 1;
    }
  }
  const auto start = Clock::now();
  std::vector<std::string> background;
  std::vector<std::string> failures;  // scenarios that failed; the others still report
  try {
    const std::vector<std::pair<const char*, void (*)(const Settings&)>> scenarios = {
        {"reuse", scenario_reuse},     {"start", scenario_start}, {"overhead", scenario_overhead},
        {"scaling", scenario_scaling}, {"lfsr-12", scenario_lfsr12}, {"e2e", scenario_e2e},
        {"volume", scenario_volume},   {"hostcost", scenario_hostcost}, {"sweep16", scenario_sweep16},
        {"oneshot", scenario_oneshot},
        {"isolation", scenario_isolation}, {"registry", scenario_registry},
#ifdef POOL_BENCH_MPIRUN
        {"mpi", scenario_mpi},
#endif
    };
    // A scenario that stops making progress (a hung pool) is an error, not a
    // benchmark that never ends.
    std::atomic<long> scenario_deadline{0};
    std::atomic<const char*> current{""};
    std::thread([&] {
      watchdog_tid = int(::syscall(SYS_gettid));
      for (;;) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        const long d = scenario_deadline.load();
        if (d > 0 && Clock::now().time_since_epoch().count() > d) {
          fmt::print(stderr, "pool_bench: error: scenario {} did not finish in {} s (a hung pool?)\n",
                     current.load(), settings.quick ? 50 : 600);
          std::_Exit(1);
        }
      }
    }).detach();
    for (const auto& [name, run] : scenarios) {
      if (!settings.only.empty() &&
          std::find(settings.only.begin(), settings.only.end(), name) == settings.only.end())
        continue;
      if (settings.quiet_wait > 0) {
        const double waited = wait_for_quiet(settings.quiet_wait);
        if (waited > 1.5)
          fmt::print(stderr, "pool_bench: waited {:.0f} s for other processes to go quiet{}\n", waited,
                     waited >= settings.quiet_wait ? " (gave up)" : "");
      }
      current = name;
      scenario_deadline = (Clock::now() + std::chrono::seconds(settings.quick ? 50 : 600)).time_since_epoch().count();
      const auto t = Clock::now();
      const double busy0 = machine_busy_seconds(), own0 = own_cpu_seconds();
      try {
        run(settings);
      } catch (const std::exception& e) {
        failures.push_back(fmt::format("{}: {}", name, e.what()));
        fmt::print(stderr, "pool_bench: error: {}: {}\n", name, e.what());
      }
      scenario_deadline = 0;
      const double wall = seconds_since(t);
      // Every worker and command of the scenario has been reaped by now.
      const double others = std::max(0.0, (machine_busy_seconds() - busy0) - (own_cpu_seconds() - own0));
      background.push_back(fmt::format("{} {:.2f}", name, others / wall));
      fmt::print(stderr, "pool_bench: {} done in {:.1f} s (other processes used {:.2f} cores)\n", name,
                 wall, others / wall);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "pool_bench: error: {}\n", e.what());
    return 1;
  }
  fmt::print("Machine: {}. Repetitions per figure: {}{}.\n\n", machine_description(), settings.reps,
             settings.quick ? " (--quick: smoke mode, reduced sizes)" : "");
  const Verdict verdict = print_table(stdout);
  fmt::print("\nTargets: {} met, {} missed. Median of the repetitions; 95% CI for the median from order "
             "statistics; ratios of medians with a 95% bootstrap interval (\"the time\": variant / "
             "reference, \"faster\": reference / variant). \"CI straddles\": the interval crosses the "
             "target, so the verdict rests on the point estimate.\n\n",
             verdict.met, verdict.missed);
  print_projection(stdout);
  for (const auto& note : notes) fmt::print("- {}\n", note);
  if (!have_python())
    fmt::print("- Python rows left out ({}).\n", python_disabled ? "--no-python" : "python3 not found at configure time");
  std::string joined;
  for (const auto& b : background) joined += (joined.empty() ? "" : ", ") + b;
  fmt::print("- **background load**: CPU used by other processes on this machine during each scenario "
             "(/proc/stat busy time minus this process and its reaped children), in cores: {}. "
             "Anything well above 0 means the figures of that scenario are disturbed.\n", joined);
  for (const auto& f : failures) fmt::print("- **error** (scenario left out of the table): {}\n", f);
  fmt::print("\nTotal benchmark time: {:.0f} s.\n", seconds_since(start));
  return failures.empty() ? 0 : 1;
}
