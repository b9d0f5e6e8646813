// bench_support.hpp: what the pool benchmarks share: statistics (medians,
// distribution-free intervals, bootstrap ratios), the result table with its
// targets, and helpers that run pools, commands and Python. Header-only
// (inline), included by pool_bench.cpp and the scenario files beside it.
#pragma once

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <mathpool/plugin.hpp>
#include <mathpool/pool.hpp>



extern char** environ;

namespace bench {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using mathpool::Value;

// ---- statistics -------------------------------------------------------------

inline double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// A distribution-free 95% interval for the median: order statistics
// x(j) .. x(n+1-j) (1-based) with the largest j whose binomial coverage
// P(j <= B <= n-j), B ~ Bin(n, 1/2), is still >= 95%. Below 6 samples no
// such j exists and the interval is the range.
inline std::pair<double, double> median_interval(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const int n = int(v.size());
  std::vector<double> pmf(std::size_t(n) + 1);
  for (int k = 0; k <= n; ++k)
    pmf[std::size_t(k)] = std::exp(std::lgamma(n + 1.0) - std::lgamma(k + 1.0) -
                                   std::lgamma(n - k + 1.0) - n * std::log(2.0));
  int best = 1;
  for (int j = 1; 2 * j <= n; ++j) {
    double coverage = 0;
    for (int k = j; k <= n - j; ++k) coverage += pmf[std::size_t(k)];
    if (coverage >= 0.95) best = j;
  }
  return {v[std::size_t(best - 1)], v[std::size_t(n - best)]};
}

struct Summary {
  double median = 0, lo = 0, hi = 0;
};

inline Summary summarize(const std::vector<double>& v) {
  auto [lo, hi] = median_interval(v);
  return {median_of(v), lo, hi};
}

// Bootstrap (2000 resamples) of median(a) / median(b): point and 95% interval.
inline Summary ratio_of_medians(const std::vector<double>& a, const std::vector<double>& b) {
  std::mt19937_64 rng(12345);
  auto resample = [&rng](const std::vector<double>& v) {
    std::uniform_int_distribution<std::size_t> pick(0, v.size() - 1);
    std::vector<double> r(v.size());
    for (double& x : r) x = v[pick(rng)];
    return median_of(r);
  };
  std::vector<double> ratios;
  for (int i = 0; i < 2000; ++i) ratios.push_back(resample(a) / resample(b));
  std::sort(ratios.begin(), ratios.end());
  return {median_of(a) / median_of(b), ratios[50], ratios[1949]};
}

// ---- the table --------------------------------------------------------------

enum class Unit { seconds, percent, count };
enum class Compare { none, slowdown, speedup };  // ratio = v/ref, or ref/v
enum class Goal { none, value_below, ratio_at_most, ratio_at_least };

struct Row {
  std::string scenario, variant;
  std::vector<double> samples;
  Unit unit = Unit::seconds;
  Compare compare = Compare::none;
  std::string reference;           // its name
  std::vector<double> ref_samples;
  Goal goal = Goal::none;
  double threshold = 0;
  std::string target;  // as printed
};

inline std::vector<Row> table;
inline std::atomic<int> watchdog_tid{0};  // pool_bench's watchdog thread, left out of wake-up counts
inline std::vector<std::string> notes;

inline std::string format_value(double x, Unit unit) {
  if (unit == Unit::percent) return fmt::format("{:.2f} %", x);
  if (unit == Unit::count) return fmt::format("{:.2f}", x);
  const double a = std::fabs(x);
  if (a >= 1) return fmt::format("{:.3f} s", x);
  if (a >= 1e-3) return fmt::format("{:.2f} ms", x * 1e3);
  if (a >= 1e-6) return fmt::format("{:.2f} µs", x * 1e6);
  return fmt::format("{:.0f} ns", x * 1e9);
}

inline std::string format_ratio(double r) { return r >= 100 ? fmt::format("{:.0f}", r) : fmt::format("{:.3g}", r); }

struct Verdict {
  int met = 0, missed = 0;
};

inline Verdict print_table(std::FILE* out) {
  Verdict verdict;
  fmt::print(out, "| Scenario | Variant | Median | 95% CI | Reference | Ratio (95% CI) | Target | Result |\n");
  fmt::print(out, "|---|---|---:|---|---|---|---|---|\n");
  for (const Row& row : table) {
    const Summary s = summarize(row.samples);
    std::string ratio = "—";
    Summary r{};
    if (row.compare != Compare::none) {
      r = row.compare == Compare::slowdown ? ratio_of_medians(row.samples, row.ref_samples)
                                           : ratio_of_medians(row.ref_samples, row.samples);
      ratio = fmt::format("{}× {} ({}–{})", format_ratio(r.median),
                          row.compare == Compare::slowdown ? "the time" : "faster",
                          format_ratio(r.lo), format_ratio(r.hi));
    }
    std::string result = "—";
    if (row.goal != Goal::none) {
      bool met = false, sure = false;
      switch (row.goal) {
        case Goal::value_below: met = s.median < row.threshold; sure = met ? s.hi < row.threshold : s.lo >= row.threshold; break;
        case Goal::ratio_at_most: met = r.median <= row.threshold; sure = met ? r.hi <= row.threshold : r.lo > row.threshold; break;
        case Goal::ratio_at_least: met = r.median >= row.threshold; sure = met ? r.lo >= row.threshold : r.hi < row.threshold; break;
        case Goal::none: break;
      }
      result = std::string(met ? "**met**" : "**missed**") + (sure ? "" : " (CI straddles)");
      ++(met ? verdict.met : verdict.missed);
    }
    fmt::print(out, "| {} | {} | {} | [{}, {}] | {} | {} | {} | {} |\n", row.scenario, row.variant,
               format_value(s.median, row.unit), format_value(s.lo, row.unit),
               format_value(s.hi, row.unit), row.reference.empty() ? "—" : row.reference, ratio,
               row.target.empty() ? "—" : row.target, result);
  }
  return verdict;
}

// ---- helpers ----------------------------------------------------------------

struct Settings {
  bool quick = false;
  int reps = 11;
  double quiet_wait = 120;  // seconds to wait for an idle machine before each scenario
  std::vector<std::string> only;  // scenarios to run; empty: all
};

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

inline long self_context_switches() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_nvcsw + u.ru_nivcsw;
}

inline double self_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

inline int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return int(std::thread::hardware_concurrency());
  return CPU_COUNT(&set);
}

inline mathpool::PoolOptions pool_options(int workers, mathpool::StartMode start, const char* plugin,
                                   std::optional<std::vector<std::string>> preload = std::nullopt) {
  mathpool::PoolOptions options;
  options.workers = workers;
  options.start = start;
  options.default_plugin_paths = false;
  options.plugin_paths = {plugin};
  options.preload = std::move(preload);
  return options;
}

inline void check_results(const std::vector<mathpool::TaskResult>& results, const char* what) {
  for (const auto& r : results)
    if (!r.ok())
      throw std::runtime_error(fmt::format("{}: task failed ({}): {}", what, r.status(), r.error->message));
}

// A plugin loaded into this process, to call its analyses directly.
class InProcessPlugin {
 public:
  explicit InProcessPlugin(const char* file) {
    // Never unloaded: objects the plugin made must not outlive its code.
    void* handle = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!handle) throw std::runtime_error(fmt::format("dlopen {}: {}", file, dlerror()));
    using Entry = const mathpool::PluginDescriptor* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(handle, mathpool::kPluginEntrySymbol));
    if (!entry) throw std::runtime_error(fmt::format("{}: no plugin entry point", file));
    const auto* descriptor = entry();
    std::string error;
    if (descriptor->api_version != mathpool::kPluginApiVersion ||
        !descriptor->declare(&analyses_, &error))
      throw std::runtime_error(fmt::format("{}: cannot declare analyses: {}", file, error));
  }
  const mathpool::GuardedAnalysis& find(std::string_view name) const {
    for (const auto& a : analyses_)
      if (a.doc.name == name) return a;
    throw std::runtime_error(fmt::format("no analysis {}", name));
  }
  static std::any setup(const mathpool::GuardedAnalysis& a) {
    if (!a.setup) return {};
    mathpool::TaskError error;
    std::any state = a.setup(&error);
    if (!error.message.empty()) throw std::runtime_error("setup failed: " + error.message);
    return state;
  }
  static Value run(const mathpool::GuardedAnalysis& a, const Value& params, const std::any& state) {
    mathpool::Outcome outcome = a.run(params, state);
    if (!outcome.ok) throw std::runtime_error("direct call failed: " + outcome.error.message);
    return std::move(outcome.result);
  }

 private:
  std::vector<mathpool::GuardedAnalysis> analyses_;
};

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Starts a command with stdout/stderr to /dev/null; returns its pid.
inline pid_t spawn_quiet(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error(fmt::format("cannot start {}: {}", argv[0], std::strerror(rc)));
  return pid;
}

// Sleeps until `pid` (a child) has exited, without reaping it, or until
// `limit` seconds after `start`: false then. Woken by its pidfd, not by a
// timer: a measurement that polled every 100 us woke 10,000 times a second
// beside the program it measured, on one of this machine's two cores (the
// host CPU of a million echo tasks read 430 ns a task that way, 340 ns with
// the harness asleep).
inline bool sleep_until_exit(pid_t pid, Clock::time_point start, double limit) {
  const int pidfd = int(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) throw std::runtime_error("pidfd_open failed");
  for (;;) {
    const double left = limit - seconds_since(start);
    pollfd ended{pidfd, POLLIN, 0};
    const int ready = left > 0 ? ::poll(&ended, 1, int(std::ceil(left * 1000))) : 0;
    if (ready > 0 || (ready == 0 && left <= 0)) {
      ::close(pidfd);
      return ready > 0;
    }
    if (ready < 0 && errno != EINTR) {
      ::close(pidfd);
      throw std::runtime_error("poll failed");
    }
  }
}

// Waits for `pid`, calling `poll` about every `period` meanwhile (without
// `poll`, asleep until it exits); kills it after `limit` seconds. Throws
// unless it exits 0.
inline void wait_success(pid_t pid, const std::string& name, Clock::time_point start, double limit,
                         std::chrono::microseconds period, const std::function<void()>& poll = {}) {
  int status = 0;
  if (!poll && !sleep_until_exit(pid, start, limit)) {
    ::kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    throw std::runtime_error(fmt::format("{} did not finish in {:.0f} s (hung); killed", name, limit));
  }
  for (;;) {
    if (poll) poll();
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) throw std::runtime_error("waitpid failed");
    if (seconds_since(start) > limit) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      throw std::runtime_error(fmt::format("{} did not finish in {:.0f} s (hung); killed", name, limit));
    }
    std::this_thread::sleep_for(period);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(fmt::format("{} failed (wait status {})", name, status));
}

// Runs a command with stdout/stderr to /dev/null; returns wall seconds from
// spawn to reaped exit. Throws on a non-zero exit.
inline double time_command(const std::vector<std::string>& argv) {
  const auto start = Clock::now();
  const pid_t pid = spawn_quiet(argv);
  wait_success(pid, argv[0], start, 120, std::chrono::microseconds(100));
  return seconds_since(start);
}

// A command's wall time and the kernel's CPU accounting of that process
// alone: its own utime+stime, and cutime+cstime (every descendant it, or a
// child of it, waited for: a mathpool host's supervisor and workers).
struct AccountedRun {
  double seconds = 0;
  double own_cpu = 0;       // the process's utime + stime, seconds
  double children_cpu = 0;  // its cutime + cstime, seconds
  double own_share() const { return own_cpu + children_cpu > 0 ? own_cpu / (own_cpu + children_cpu) : 0; }
};

// Runs `argv` as time_command does, calling `poll` every `period`. When it
// exits, waits with WNOWAIT so the zombie stays, reads /proc/PID/stat fields
// 14-17 (utime, stime, cutime, cstime), then reaps it. Throws unless it exits 0.
inline AccountedRun run_accounted(const std::vector<std::string>& argv, double limit = 300,
                                  std::chrono::microseconds period = std::chrono::microseconds(100),
                                  const std::function<void()>& poll = {}) {
  const auto start = Clock::now();
  const pid_t pid = spawn_quiet(argv);
  AccountedRun run;
  if (!poll && !sleep_until_exit(pid, start, limit)) {
    ::kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    throw std::runtime_error(fmt::format("{} did not finish in {:.0f} s (hung); killed", argv[0], limit));
  }
  for (;;) {
    if (poll) poll();
    siginfo_t info{};
    if (waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT | WNOHANG) != 0 && errno != EINTR)
      throw std::runtime_error("waitid failed");
    if (info.si_pid == pid) break;
    if (seconds_since(start) > limit) {
      ::kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      throw std::runtime_error(fmt::format("{} did not finish in {:.0f} s (hung); killed", argv[0], limit));
    }
    std::this_thread::sleep_for(period);
  }
  run.seconds = seconds_since(start);
  std::ifstream proc(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(proc)), std::istreambuf_iterator<char>());
  const auto paren = stat.rfind(')');  // the command name may hold spaces
  std::istringstream fields(paren == std::string::npos ? std::string() : stat.substr(paren + 1));
  std::string field;
  std::vector<std::string> after;  // fields 3, 4, ...
  while (fields >> field) after.push_back(field);
  const double tick = double(sysconf(_SC_CLK_TCK));
  int status = 0;
  waitpid(pid, &status, 0);
  if (after.size() < 15) throw std::runtime_error(fmt::format("{}: cannot read /proc/{}/stat", argv[0], pid));
  run.own_cpu = (std::stod(after[11]) + std::stod(after[12])) / tick;        // fields 14, 15
  run.children_cpu = (std::stod(after[13]) + std::stod(after[14])) / tick;   // fields 16, 17
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(fmt::format("{} failed (wait status {})", argv[0], status));
  return run;
}

// A process that spins on one core until it is killed: a second busy
// program beside a measurement.
class BusyProcess {
 public:
  BusyProcess() {
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // Never outlive pool_bench (its watchdog may _Exit it).
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(0);
      volatile unsigned long spin = 0;
      for (unsigned long i = 0;; ++i) spin = i;
    }
  }
  BusyProcess(const BusyProcess&) = delete;
  BusyProcess& operator=(const BusyProcess&) = delete;
  ~BusyProcess() {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

 private:
  pid_t pid_ = -1;
};

// Figures the projection table (printed after the main table) is made of,
// filled by the scenarios that measure them; empty when left out.
struct ProjectionInputs {
  std::vector<double> echo_host_cpu_per_task;  // hostcost: host utime+stime / tasks, 1M echo run
  long echo_tasks = 0;
  std::vector<double> sweep16_task_seconds;    // sweep16: mean of the records' `seconds`
  std::vector<double> sweep16_host_cpu_per_task;  // sweep16: host utime+stime / tasks, 2 workers
  long sweep16_tasks = 0;
  int sweep16_degree = 16;  // 11 with --quick
};
inline ProjectionInputs projection;

inline std::string capture_command(const std::string& command) {
  std::FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  std::string out;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  if (pclose(pipe) != 0) throw std::runtime_error("command failed: " + command);
  return out;
}

inline bool python_disabled = false;  // --no-python
inline bool have_python() { return !python_disabled && std::strlen(POOL_BENCH_PYTHON) > 0; }

inline std::vector<double> python_overhead(int n, int reps, int chunksize) {
  const std::string out = capture_command(fmt::format(
      "{} {} overhead {} {} {}", shell_quote(POOL_BENCH_PYTHON), shell_quote(POOL_BENCH_PY_SCRIPT),
      n, reps, chunksize));
  std::vector<double> per_task;
  for (const auto& t : Value::parse(out)) per_task.push_back(t.get<double>() / n);
  return per_task;
}

inline fs::path write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

// The config of the volume runs: a range sweep x: [0, n) over example.echo, run "echo".
inline std::string echo_config(long n, const std::string& output) {
  return fmt::format("pool: {{workers: 2}}\noutput: {}\nanalyses:\n  - name: echo\n    analysis: example.echo\n"
                     "    sweep:\n      x: {{range: [0, {}]}}\n",
                     output, n);
}

inline long count_lines(const fs::path& file) {
  std::ifstream in(file);
  return long(std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "pool_bench.XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace bench
