// mpi_scenarios.cpp: `mathpool run --mpi` under Open MPI's mpirun on this one
// machine (built when the project has MPI support).
//   mpi   start-up of an MPI job, rank 0's feeding rate, the degree-16 sweep
#include "bench_support.hpp"

namespace bench {
namespace {

const std::vector<std::string> kLaunch = {POOL_BENCH_MPIRUN, "--allow-run-as-root", "--oversubscribe",
                                          "--bind-to", "none"};

std::vector<std::string> mpi_run(int ranks, const fs::path& config, const fs::path& out, const char* plugin) {
  std::vector<std::string> argv = kLaunch;
  for (const std::string& a : {std::string("-n"), std::to_string(ranks), std::string(POOL_BENCH_MATHPOOL),
                               std::string("run"), std::string("--force"), std::string("--quiet"), std::string("--mpi"), config.string(), std::string("-o"),
                               out.string(), std::string("--plugin-path"), std::string(plugin)})
    argv.push_back(a);
  return argv;
}

std::vector<std::string> plain_run(const fs::path& config, const fs::path& out, const char* plugin) {
  return {POOL_BENCH_MATHPOOL, "run", "--force", "--quiet", config.string(), "-o", out.string(), "--plugin-path", plugin};
}

fs::path write_config(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

long lines_in(const fs::path& file) {
  std::ifstream in(file);
  return long(std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

}  // namespace

void scenario_mpi(const Settings& s) {
  const int reps = std::min(s.reps, s.quick ? 2 : 5);
  const long echoes = s.quick ? 20000 : 500000;
  TempDir dir;
  const fs::path one = write_config(dir.path / "one.yaml",
                                    "analyses:\n  - {name: e, analysis: example.echo, params: {x: 1}}\n");
  const fs::path many = write_config(
      dir.path / "many.yaml",
      fmt::format("analyses:\n  - name: e\n    analysis: example.echo\n    sweep: {{x: {{range: [0, {}]}}}}\n", echoes));
  std::string bits;
  for (int i = 0; i < (s.quick ? 10 : 15); ++i) bits += ", *bit";
  const fs::path sweep = write_config(
      dir.path / "sweep16.yaml",
      fmt::format("anchors: {{bit: &bit [0, 1]}}\nanalyses:\n  - name: all16\n    analysis: lfsr.cycles\n"
                  "    params: {{field: 2}}\n    sweep:\n      coefficients: {{product: [[1]{}]}}\n",
                  bits));
  const fs::path out = dir.path / "out.jsonl";

  std::vector<double> start_empty, start_plain, start_mpi2, start_mpi3, feed, t_plain, t_mpi, t_mpi_less_start;
  for (int r = 0; r < reps; ++r) {
    std::vector<std::string> empty = kLaunch;
    for (const char* a : {"-n", "2", POOL_BENCH_MPI_EMPTY}) empty.push_back(a);
    start_empty.push_back(time_command(empty));
    start_plain.push_back(time_command(plain_run(one, out, POOL_BENCH_EXAMPLE_PLUGIN)));
    start_mpi2.push_back(time_command(mpi_run(2, one, out, POOL_BENCH_EXAMPLE_PLUGIN)));
    start_mpi3.push_back(time_command(mpi_run(3, one, out, POOL_BENCH_EXAMPLE_PLUGIN)));
    // Rank 0 feeds three nodes of echo workers; the job's time less an
    // empty job's is the time to hand out every task and take its result.
    const double t = time_command(mpi_run(3, many, out, POOL_BENCH_EXAMPLE_PLUGIN));
    if (lines_in(out) != echoes) throw std::runtime_error("mpi: the echo job lost records");
    feed.push_back(std::max(t - start_mpi3.back(), 1e-9) / double(echoes));
    t_plain.push_back(time_command(plain_run(sweep, out, POOL_BENCH_LFSR_PLUGIN)));
    t_mpi.push_back(time_command(mpi_run(2, sweep, out, POOL_BENCH_LFSR_PLUGIN)));
    t_mpi_less_start.push_back(t_mpi.back() - (start_mpi2.back() - start_plain.back()));
  }
  const long registers = lines_in(out);
  const std::string sc = "mpi";
  table.push_back({sc, "plain `mathpool run`, one echo task, whole process", start_plain});
  table.push_back({sc, "`mpirun -n 2` of a program that only calls MPI_Init and MPI_Finalize", start_empty});
  table.push_back({sc, "`mpirun -n 2 mathpool run --mpi`, one echo task, whole job", start_mpi2, Unit::seconds,
                   Compare::slowdown, "plain one task", start_plain});
  table.push_back({sc, "`mpirun -n 2 mathpool run --mpi`, one echo task, whole job ", start_mpi2, Unit::seconds,
                   Compare::slowdown, "empty MPI program", start_empty});
  table.push_back({sc, "`mpirun -n 3 mathpool run --mpi`, one echo task, whole job", start_mpi3, Unit::seconds,
                   Compare::slowdown, "plain one task", start_plain});
  table.push_back({sc, fmt::format("rank 0 feeding 3 nodes: time per echo task ({} tasks, job less an empty job)", echoes),
                   feed, Unit::seconds, Compare::none, "", {}, Goal::value_below, 10e-6,
                   "≤ 10 µs (≥ 100,000 tasks/s)"});
  table.push_back({sc, fmt::format("plain `mathpool run`, {} registers of degree {}", registers, s.quick ? 11 : 16),
                   t_plain});
  table.push_back({sc, "`mpirun -n 2 ... --mpi`, same sweep, whole job", t_mpi, Unit::seconds, Compare::slowdown,
                   "plain sweep", t_plain, Goal::ratio_at_most, 1.1, "≤ 1.1× plain"});
  table.push_back({sc, "`mpirun -n 2 ... --mpi`, same sweep, less the MPI start-up", t_mpi_less_start,
                   Unit::seconds, Compare::slowdown, "plain sweep", t_plain});
  notes.push_back(fmt::format(
      "**mpi**: `mpirun --allow-run-as-root --oversubscribe --bind-to none -n N mathpool run --mpi` on this one "
      "machine, `workers: auto` on every rank (the machine's cores shared among its ranks: one worker each "
      "with 2 ranks on 2 cores). "
      "Start-up: a job of one echo task against a plain run of it. Feeding: 3 ranks, {} echo tasks; per task, "
      "(job time - one-task job time) / tasks. Sweep: `lfsr.cycles` over every register of degree {} with "
      "c0 = 1; \"less the MPI start-up\" subtracts, per repetition, the one-task jobs' difference "
      "(mpirun -n 2 - plain). {} repetitions.",
      echoes, s.quick ? 11 : 16, reps));
}

}  // namespace bench
