// Host-cost scenario of pool_bench: what the host process itself costs per
// task, from the kernel's accounting of that process alone.
//   hostcost   `mathpool run` of 1M echo tasks, records to a file, against
//              record_floor (the same lines formatted and written by a minimal
//              program), interleaved; the host's own CPU as a share of the
//              run's CPU and per task
// and the projection table printed after the main table: tasks per second one
// host can feed at that cost, and the cores at which a degree-16 sweep (its
// task time from the sweep16 scenario) saturates one host.
#include "bench_support.hpp"

namespace bench {
namespace {

// A record line less its `worker` and `seconds` (the line's tail from `,"worker":`).
std::string_view without_worker_and_seconds(std::string_view line) {
  const auto at = line.rfind(",\"worker\":");
  return at == std::string_view::npos ? line : line.substr(0, at);
}

// Throws unless both files hold the same lines less `worker` and `seconds`.
void check_same_records(const fs::path& run, const fs::path& floor) {
  std::ifstream a(run), b(floor);
  std::string x, y;
  for (long line = 1;; ++line) {
    const bool more_a = bool(std::getline(a, x)), more_b = bool(std::getline(b, y));
    if (!more_a && !more_b) return;
    if (more_a != more_b || without_worker_and_seconds(x) != without_worker_and_seconds(y))
      throw std::runtime_error(fmt::format("hostcost: record_floor's line {} differs from the run's: {} / {}", line,
                                           more_a ? x : "(none)", more_b ? y : "(none)"));
  }
}

std::vector<double> divided(std::vector<double> v, double by) {
  for (double& x : v) x /= by;
  return v;
}

}  // namespace

void scenario_hostcost(const Settings& s) {
  const long n = s.quick ? 20000 : 1000000;
  const int reps = std::min(s.reps, s.quick ? 3 : 7);
  TempDir dir;
  const fs::path config = write_file(dir.path / "echo.yaml", echo_config(n, "mathpool.jsonl"));
  const std::vector<std::string> mathpool_cmd = {POOL_BENCH_MATHPOOL, "run", "--force", "--quiet", config.string(),
                                                 "--plugin-path", POOL_BENCH_EXAMPLE_PLUGIN};
  const std::vector<std::string> floor_cmd = {POOL_BENCH_RECORD_FLOOR, std::to_string(n),
                                              (dir.path / "floor.jsonl").string()};
  std::vector<double> t_run, t_floor, share, host_cpu;
  for (int r = 0; r < reps; ++r) {
    const AccountedRun run = run_accounted(mathpool_cmd);
    t_run.push_back(run.seconds);
    share.push_back(100 * run.own_share());
    host_cpu.push_back(run.own_cpu);
    t_floor.push_back(time_command(floor_cmd));
  }
  if (count_lines(dir.path / "mathpool.jsonl") != n)
    throw std::runtime_error("hostcost: mathpool run wrote the wrong number of records");
  check_same_records(dir.path / "mathpool.jsonl", dir.path / "floor.jsonl");
  projection.echo_host_cpu_per_task = divided(host_cpu, double(n));
  projection.echo_tasks = n;

  const std::string sc = "hostcost";
  const std::string what = fmt::format("{} echo records to a file", n);
  table.push_back({sc, "record floor: `record_floor` formats and writes the same lines (2 threads), " + what, t_floor});
  table.push_back({sc, "`mathpool run`, " + what + ", 2 workers", t_run, Unit::seconds, Compare::slowdown,
                   "record floor", t_floor, Goal::ratio_at_most, 2, "≤ 2× the floor"});
  table.push_back({sc, "host CPU share of the run: the host's utime+stime / all its CPU, " + what, share, Unit::percent,
                   Compare::none, "", {}, Goal::value_below, 15, "≤ 15 %"});
  table.push_back({sc, "host CPU per task (utime+stime / tasks), " + what, projection.echo_host_cpu_per_task});
  notes.push_back(fmt::format(
      "**hostcost**: whole wall time of `mathpool run` of the volume config ({0} echo tasks, 2 workers, records "
      "to a file), interleaved with `record_floor {0} FILE`: a minimal program writing the same lines (checked "
      "equal less `worker` and `seconds`), constant parts copied and integers by `std::to_chars`, formatted in two "
      "threads taking 32 Ki-line blocks in turn, each block one `write`. Host CPU: the kernel's accounting of the "
      "`mathpool` process alone: pool_bench waits for it with `waitid(WEXITED | WNOWAIT)`, reads /proc/PID/stat "
      "fields 14-17 (utime, stime, cutime, cstime; clock ticks of {1} ms) from the zombie, then reaps it. The share "
      "is utime+stime over all four (cutime+cstime hold the supervisor and the workers, which the supervisor "
      "reaps); per task it is utime+stime / {0}. {2} repetitions.",
      n, 1000 / sysconf(_SC_CLK_TCK), reps));
}

void print_projection(std::FILE* out) {
  const ProjectionInputs& p = projection;
  if (p.echo_host_cpu_per_task.empty()) return;
  const double cost = median_of(p.echo_host_cpu_per_task);
  fmt::print(out, "Projection from this run's figures (medians; what one host process can feed):\n\n");
  fmt::print(out, "| Projection | Value | From |\n|---|---:|---|\n");
  fmt::print(out, "| host CPU per task | {} | hostcost: the host's utime+stime / {} echo tasks |\n",
             format_value(cost, Unit::seconds), p.echo_tasks);
  fmt::print(out, "| tasks per second one host can feed | {:.2f} M | 1 / host CPU per task |\n", 1e-6 / cost);
  if (!p.sweep16_task_seconds.empty()) {
    const double task = median_of(p.sweep16_task_seconds);
    fmt::print(out, "| mean degree-{} task time | {} | sweep16: the records' `seconds` / {} tasks |\n",
               p.sweep16_degree, format_value(task, Unit::seconds), p.sweep16_tasks);
    fmt::print(out, "| cores at which a degree-{0} sweep saturates one host | {1:.0f} | mean degree-{0} task time / "
                    "host CPU per task |\n", p.sweep16_degree, task / cost);
    if (!p.sweep16_host_cpu_per_task.empty()) {
      const double own = median_of(p.sweep16_host_cpu_per_task);
      fmt::print(out, "| the same, at the sweep's own host CPU per task ({}) | {:.0f} | sweep16: the host's "
                      "utime+stime / {} tasks, 2 workers, start-up included |\n",
                 format_value(own, Unit::seconds), task / own, p.sweep16_tasks);
    }
  }
  fmt::print(out, "\n");
}

}  // namespace bench
