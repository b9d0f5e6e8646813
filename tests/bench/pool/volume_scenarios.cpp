// Volume scenarios of pool_bench: what users run at scale, measured whole.
//   volume     1M echo tasks through `mathpool run` vs Python Pool.imap; host memory at 1M and 10M
//   sweep16    every degree-16 register, 1 vs 2 workers, quiet and beside a busy process,
//              against the tasks' own time; the host's CPU share
//   oneshot    a whole `mathpool run` of four small registers against `mathpool --help`
//   isolation  per-task cost of isolation: task next to isolation: worker and the
//              fork floors (a minimal process, and from inside a warm worker)
#include "bench_support.hpp"

namespace bench {
namespace {

// Spawns `argv` (output to /dev/null) and samples its VmHWM until it exits:
// the peak resident memory of that process alone, not of its children.
struct Measured {
  double seconds = 0;
  double peak_bytes = 0;
};

Measured run_and_watch(const std::vector<std::string>& argv) {
  const auto start = Clock::now();
  const pid_t pid = spawn_quiet(argv);
  Measured m;
  wait_success(pid, argv[0], start, 300, std::chrono::milliseconds(2), [&] {
    std::ifstream proc(fmt::format("/proc/{}/status", pid));
    for (std::string line; std::getline(proc, line);)
      if (line.rfind("VmHWM:", 0) == 0) m.peak_bytes = std::max(m.peak_bytes, 1024.0 * std::stod(line.substr(6)));
  });
  m.seconds = seconds_since(start);
  return m;
}

// The sum of the records' "seconds" (each record ends with it).
double summed_task_seconds(const fs::path& file) {
  std::ifstream in(file);
  double total = 0;
  for (std::string line; std::getline(in, line);) {
    const auto at = line.rfind("\"seconds\":");
    if (at != std::string::npos) total += std::stod(line.substr(at + 10));
  }
  return total;
}

}  // namespace

void scenario_volume(const Settings& s) {
  const long n = s.quick ? 20000 : 1000000;
  const long huge = s.quick ? 200000 : 10000000;
  const int reps = std::min(s.reps, s.quick ? 3 : 5);  // a Python run of 1M takes seconds
  TempDir dir;
  const fs::path config = write_file(dir.path / "echo.yaml", echo_config(n, "mathpool.jsonl"));
  const std::vector<std::string> mathpool_cmd = {POOL_BENCH_MATHPOOL, "run", "--force", "--quiet", config.string(), "--plugin-path",
                                                 POOL_BENCH_EXAMPLE_PLUGIN};
  const std::vector<std::string> python_cmd = {POOL_BENCH_PYTHON, POOL_BENCH_PY_SCRIPT, "imap", std::to_string(n),
                                               (dir.path / "python.jsonl").string()};
  std::vector<double> tm, tp, mem;
  for (int r = 0; r < reps; ++r) {
    const Measured m = run_and_watch(mathpool_cmd);
    tm.push_back(m.seconds);
    mem.push_back(m.peak_bytes);
    if (have_python()) tp.push_back(time_command(python_cmd));
  }
  if (count_lines(dir.path / "mathpool.jsonl") != n)
    throw std::runtime_error("volume: mathpool run wrote the wrong number of records");
  // Ten times the tasks, records to /dev/null: the host's peak must not move.
  const fs::path big = write_file(dir.path / "big.yaml", echo_config(huge, "/dev/null"));
  std::vector<double> mem_big;
  for (int r = 0; r < (s.quick ? 1 : 3); ++r)
    mem_big.push_back(
        run_and_watch({POOL_BENCH_MATHPOOL, "run", "--force", "--quiet", big.string(), "--plugin-path", POOL_BENCH_EXAMPLE_PLUGIN})
            .peak_bytes);
  const std::string sc = "volume";
  const std::string what = fmt::format("{} echo tasks, range sweep, 2 workers", n);
  if (have_python()) {
    table.push_back({sc, "Python: Pool(2).imap(chunksize=1000) over a generator + JSON lines, " + what, tp});
    table.push_back({sc, "`mathpool run`, " + what, tm, Unit::seconds, Compare::speedup, "Python imap", tp,
                     Goal::ratio_at_least, 10, "≥ 10× faster"});
  } else {
    table.push_back({sc, "`mathpool run`, " + what, tm});
  }
  auto mib = [](std::vector<double> v) {
    for (double& x : v) x /= 1048576.0;
    return v;
  };
  table.push_back({sc, fmt::format("host peak memory (MiB), {} tasks", n), mib(mem), Unit::count, Compare::none, "",
                   {}, Goal::value_below, 64, "≤ 64 MiB"});
  table.push_back({sc, fmt::format("host peak memory (MiB), {} tasks", huge), mib(mem_big), Unit::count,
                   Compare::none, "", {}, Goal::value_below, 64, "≤ 64 MiB"});
  notes.push_back(fmt::format(
      "**volume**: whole wall time of `mathpool run` of a config sweeping `x: {{range: [0, {0}]}}` over "
      "`example.echo` (2 workers, zygote), records to a file, against `python3 py_pool_bench.py imap {0}`: "
      "interpreter, fork-context `Pool(2).imap(identity, generator, chunksize=1000)`, writing the same JSON "
      "lines. {2} repetitions. Host peak memory: `VmHWM` of the `mathpool` process itself (sampled from "
      "/proc every 2 ms; its workers are other processes), with records to a file at {0} tasks and to "
      "/dev/null at {1}.",
      n, huge, reps));
}

void scenario_sweep16(const Settings& s) {
  const int reps = std::min(s.reps, s.quick ? 3 : 5);
  TempDir dir;
  std::string bits;
  for (int i = 0; i < 15; ++i) bits += ", *bit";
  const std::string range = s.quick ? "[[1], *bit, *bit, *bit, *bit, *bit, *bit, *bit, *bit, *bit, *bit]"
                                    : "[[1]" + bits + "]";
  auto config = [&](int workers) {
    return write_file(dir.path / fmt::format("w{}.yaml", workers),
                      fmt::format("pool: {{workers: {}}}\noutput: out{}.jsonl\nanchors: {{bit: &bit [0, 1]}}\n"
                                  "analyses:\n  - name: all16\n    analysis: lfsr.cycles\n    params: {{field: 2}}\n"
                                  "    sweep:\n      coefficients: {{product: {}}}\n",
                                  workers, workers, range));
  };
  const fs::path one = config(1), two = config(2);
  auto command = [&](const fs::path& file) {
    return std::vector<std::string>{POOL_BENCH_MATHPOOL, "run", "--force", "--quiet", file.string(), "--plugin-path",
                                    POOL_BENCH_LFSR_PLUGIN};
  };
  // Quiet and busy pairs interleaved: busy runs beside a second process
  // spinning on one core for the whole run.
  std::vector<double> t1, t2, b1, b2, own, own2, own_speedup, share;
  for (int r = 0; r < reps; ++r) {
    t1.push_back(time_command(command(one)));
    own.push_back(summed_task_seconds(dir.path / "out1.jsonl"));
    const AccountedRun run = run_accounted(command(two));
    t2.push_back(run.seconds);
    own2.push_back(summed_task_seconds(dir.path / "out2.jsonl"));
    // How much faster the tasks themselves got done two at a time: what this
    // machine gives two processes of this work (memory and caches shared, the
    // host's threads on the same cores), before any other cost of the pool.
    own_speedup.push_back(2 * own.back() / own2.back());
    share.push_back(100 * run.own_share());
    projection.sweep16_host_cpu_per_task.push_back(run.own_cpu);
    BusyProcess busy;
    b1.push_back(time_command(command(one)));
    b2.push_back(time_command(command(two)));
  }
  const long tasks = count_lines(dir.path / "out2.jsonl");
  for (double& cpu : projection.sweep16_host_cpu_per_task) cpu /= double(tasks);
  for (double sum : own) projection.sweep16_task_seconds.push_back(sum / double(tasks));
  projection.sweep16_tasks = tasks;
  projection.sweep16_degree = s.quick ? 11 : 16;
  const std::string sc = "sweep16";
  table.push_back({sc, fmt::format("tasks' own time (sum of `seconds`), {} registers", tasks), own});
  table.push_back({sc, "`mathpool run`, 1 worker", t1, Unit::seconds, Compare::slowdown, "tasks' own time", own,
                   Goal::ratio_at_most, 1.2, "≤ 1.2× own time"});
  table.push_back({sc, "tasks' own time (sum of `seconds`), 2 workers side by side", own2, Unit::seconds,
                   Compare::slowdown, "tasks' own time", own});
  table.push_back({sc, "the tasks' own speed-up two at a time: 2 × own time, 1 worker / own time, 2 workers",
                   own_speedup, Unit::count});
  table.push_back({sc, "`mathpool run`, 2 workers", t2, Unit::seconds, Compare::speedup, "1 worker", t1,
                   Goal::ratio_at_least, 1.9, "≥ 1.9× faster"});
  table.push_back({sc, "`mathpool run`, 2 workers, beside a busy process", b2, Unit::seconds, Compare::speedup,
                   "1 worker, beside a busy process", b1, Goal::ratio_at_least, 1.9, "≥ 1.9× faster"});
  table.push_back({sc, "host CPU share of the run: the host's utime+stime / all its CPU, 2 workers", share,
                   Unit::percent, Compare::none, "", {}, Goal::value_below, 15, "≤ 15 %"});
  notes.push_back(fmt::format(
      "**sweep16**: `mathpool run` of `lfsr.cycles` over every degree-16 register over GF(2) with c0 = 1 "
      "(`coefficients: {{product: [[1], *bit x 15]}}`, {} tasks, records to a file), whole process, with 1 and "
      "2 workers; the tasks' own time is the sum of the records' `seconds` of the 1-worker run, and of the 2-worker "
      "run (two tasks at a time: what the machine gives two processes of this work, memory and caches shared, the "
      "host's threads on the same cores); the tasks' own speed-up is 2 × the first / the second, per repetition. "
      "\"Beside a busy "
      "process\": the same pair while a child of pool_bench spins on one core for the whole run (quiet and busy "
      "pairs interleaved). Host CPU share: the `mathpool` process's utime+stime over its utime+stime+cutime+cstime "
      "(as in hostcost) in the 2-worker runs. {} repetitions.",
      tasks, reps));
}

void scenario_oneshot(const Settings& s) {
  TempDir dir;
  const fs::path config = write_file(
      dir.path / "four.yaml",
      "pool: {workers: 1}\noutput: four.jsonl\nanalyses:\n"
      "  - {name: a, analysis: lfsr.cycles, params: {field: 2, coefficients: [1,1,0,0,1,0,1,0,0,0,0,0]}}\n"
      "  - {name: b, analysis: lfsr.cycles, params: {field: 2, coefficients: [1,0,1,1,0,0,0,0,0,0,0,0,1]}}\n"
      "  - {name: c, analysis: lfsr.cycles, params: {field: 2, coefficients: [1,1,0,1,0,0,0,0,0,0,0,0,0,1]}}\n"
      "  - {name: d, analysis: lfsr.cycles, params: {field: 2, coefficients: [1,0,0,0,0,1,0,0,0,0,1,0,1,0]}}\n");
  const fs::path echo = write_file(dir.path / "echo.yaml",
                                   "pool: {workers: 1}\noutput: echo.jsonl\nanalyses:\n"
                                   "  - {name: e, analysis: example.echo, params: {x: 1}}\n");
  // Median of at least 15 (the count); --help in the same run, interleaved.
  const int reps = s.quick ? s.reps : std::max(s.reps, 15);
  std::vector<double> t_lfsr, t_echo, t_help;
  for (int r = 0; r < reps; ++r) {
    t_lfsr.push_back(time_command({POOL_BENCH_MATHPOOL, "run", "--force", "--quiet", config.string(), "--plugin-path", POOL_BENCH_LFSR_PLUGIN}));
    t_echo.push_back(time_command({POOL_BENCH_MATHPOOL, "run", "--force", "--quiet", echo.string(), "--plugin-path", POOL_BENCH_EXAMPLE_PLUGIN}));
    t_help.push_back(time_command({POOL_BENCH_MATHPOOL, "--help"}));
  }
  if (count_lines(dir.path / "four.jsonl") != 4) throw std::runtime_error("oneshot: expected 4 records");
  const std::string sc = "oneshot";
  const std::string four = "`mathpool run` of four lfsr.cycles registers of 12-14 bits, whole process";
  table.push_back({sc, "`mathpool --help`, whole process", t_help});
  table.push_back({sc, "`mathpool run` of one example.echo task, whole process", t_echo});
  table.push_back({sc, four, t_lfsr, Unit::seconds, Compare::none, "", {}, Goal::value_below, 0.020, "≤ 20 ms"});
  table.push_back({sc, four, t_lfsr, Unit::seconds, Compare::slowdown, "`mathpool --help`", t_help,
                   Goal::ratio_at_most, 5, "≤ 5× `--help`"});
  notes.push_back(fmt::format(
      "**oneshot**: wall time from process start to exit of `mathpool run` (1 worker, zygote: template start, "
      "plugin load, setup, fork, tasks, records to a file), and of `mathpool --help` (the program's start "
      "and exit alone), interleaved; {} repetitions.",
      reps));
}

void scenario_isolation(const Settings& s) {
  const int n = s.quick ? 100 : 500;  // a fork costs milliseconds on some virtual machines
  std::vector<Value> params;
  for (int i = 0; i < n; ++i) params.push_back({{"x", i}});
  // Both pools load the echo and the bench plugin: the same mappings, so the
  // in-worker floor (bench.fork_floor, run in the isolation: worker pool's
  // warm worker) forks a process like the one isolation: task forks.
  auto make = [&](mathpool::Isolation isolation) {
    auto options = pool_options(1, mathpool::StartMode::zygote, POOL_BENCH_EXAMPLE_PLUGIN,
                                std::vector<std::string>{"example.echo", "bench.fork_floor"});
    options.plugin_paths.push_back(POOL_BENCH_PLUGIN);
    options.isolation = isolation;
    options.chunk_size = 1;  // one task at a time: the cost of each task alone
    auto pool = std::make_unique<mathpool::Pool>(options);
    check_results(pool->map("example.echo", std::vector<Value>(params.begin(), params.begin() + 50)), "warm-up");
    return pool;
  };
  auto worker = make(mathpool::Isolation::worker), task = make(mathpool::Isolation::task);
  const std::vector<Value> floor_task = {Value{{"children", n}}};
  check_results(worker->map("bench.fork_floor", {Value{{"children", 10}}}), "warm-up");
  std::vector<double> tw, tt, floor, in_worker;
  for (int r = 0; r < s.reps; ++r) {
    for (auto [pool, times] : {std::pair{worker.get(), &tw}, std::pair{task.get(), &tt}}) {
      const auto t = Clock::now();
      check_results(pool->map("example.echo", params), "isolation");
      times->push_back(seconds_since(t) / n);
    }
    const auto forked = worker->map("bench.fork_floor", floor_task);
    check_results(forked, "isolation");
    in_worker.push_back(1e-6 * forked.at(0).result.at("mean_us").get<double>());
    floor.push_back(std::stod(capture_command(fmt::format("{} {}", shell_quote(POOL_BENCH_FORK_FLOOR), n))));
  }
  const std::string sc = "isolation";
  table.push_back({sc, "per task, isolation: worker (1 worker, chunk_size 1)", tw});
  table.push_back({sc, "per task, isolation: task (a fork per task)", tt, Unit::seconds, Compare::slowdown,
                   "isolation: worker", tw, Goal::value_below, 150e-6, "≤ 150 µs"});
  table.push_back({sc, "this machine's floor: fork, exit and reap of a minimal process", floor});
  table.push_back({sc, "in-worker floor: fork, exit and reap from inside a warm worker", in_worker});
  table.push_back({sc, "per task, isolation: task (a fork per task)", tt, Unit::seconds, Compare::slowdown,
                   "in-worker floor", in_worker, Goal::ratio_at_most, 1.3, "≤ 1.3× the in-worker floor"});
  notes.push_back(fmt::format("**isolation**: `Pool::map` of {0} `example.echo` tasks on a warm 1-worker zygote "
                              "pool with `chunk_size = 1`, wall time per task. The floor is `fork_floor`, "
                              "a program that only forks children which exit at once and reaps each: what a "
                              "process per task costs here before any work. The in-worker floor is the same "
                              "loop run as a task (`bench.fork_floor`, {0} children, `waitpid` each) in the warm "
                              "worker of the `isolation: worker` pool: a fork of a process with a worker's "
                              "mappings (both pools load the echo and the bench plugin), measured in the same "
                              "repetitions.",
                              n));
}

}  // namespace bench
