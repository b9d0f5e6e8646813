// mathpool/pool.hpp: a persistent pool of isolated worker processes.
//
//   mathpool::Pool pool({.workers = 2});
//   auto future = pool.submit("example.echo", {{"x", 1}});
//   mathpool::TaskResult r = future.get();        // r.ok(), r.result
//   auto results = pool.map("lfsr.polynomial", many_params);  // in order
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mathpool/analysis.hpp"
#include "mathpool/error.hpp"
#include "mathpool/value.hpp"

namespace mathpool {

enum class StartMode {
  spawn,   // every worker is a fresh process that loads plugins and runs setups
  // Workers fork from a warm template that ran the setups once. Each is a
  // child of the host process from its start (the template clones it with
  // CLONE_PARENT), so the host adopts nothing. Only a template whose setups
  // left threads running double-forks instead; the host is then a child
  // subreaper while it takes in each worker (see README, "Zygote mode").
  zygote,
};

// What a task shares with the next task of its worker.
enum class Isolation {
  // Tasks run one after another in the worker: the plugin's per-task objects
  // are fresh, but what a plugin keeps in globals survives to the next task.
  worker,
  // Each task runs in a process forked from the warm worker: nothing of one
  // task survives into the next. Costs a fork per task.
  task,
};

class MpiJob;  // mathpool/mpi.hpp

// How a pool is built. Every field has a usable default.
struct PoolOptions {
  int workers = 0;  // 0: the cores this process may run on
  StartMode start = StartMode::zygote;
  Isolation isolation = Isolation::worker;
  std::optional<std::chrono::milliseconds> task_timeout;  // nullopt: none
  std::int64_t memory_limit = 0;  // bytes of address space per worker; 0: none
  int max_tasks_per_worker = 0;   // replace a worker after this many tasks; 0: never
  int retries = 1;                // re-runs of a task whose worker died
  // How long a worker (or the zygote template) may take to load the plugins
  // and run the setups before it is killed as hung.
  std::chrono::milliseconds setup_timeout{std::chrono::seconds(120)};
  // Tasks a worker may hold at once (sent ahead so it never waits for the
  // host); 0: sized automatically from measured task times.
  int chunk_size = 0;
  // Plugin files or directories, searched after the default locations.
  std::vector<std::filesystem::path> plugin_paths;
  bool default_plugin_paths = true;  // the installed/build-tree directory and MATHPOOL_PLUGIN_PATH
  bool allow_insecure_plugins = false;  // load plugins writable by other users
  std::filesystem::path worker_program;  // empty: the one installed with this library
  // Analyses whose setup runs when the pool starts (in zygote mode once, in
  // the template, and every worker inherits it); nullopt: all of them. Name
  // the analyses a pool serves to skip the setups of the others: an analysis
  // left out is set up on its first task in each worker, at that worker's
  // cost (WorkerStats::task_setup_seconds), and only task_timeout bounds it.
  std::optional<std::vector<std::string>> preload;

  // Equal options build interchangeable pools (PoolRegistry reuses them).
  bool operator==(const PoolOptions&) const = default;
};

// The outcome of one task. Plain value type.
struct TaskResult {
  Value result;                     // the analysis's result when ok()
  std::optional<TaskError> error;   // set when not ok()
  int worker = 0;                   // pid of the worker that ran (or last ran) the task
  double seconds = 0;               // time inside the worker
  int attempts = 0;                 // how many workers the task was given to
  std::string node;                 // a pool across MPI ranks: host name of the machine that ran it

  bool ok() const noexcept { return !error; }
  // "ok", "error", "timeout", "crashed" or "memory", as in result records.
  std::string_view status() const noexcept;
};

// One task to submit: an analysis name and its parameters.
struct TaskSpec {
  std::string analysis;
  Value params;
};

struct WorkerStats {
  int slot = 0;
  int pid = 0;                 // current process (0 while restarting)
  long tasks = 0;              // tasks the current process has run
  long tasks_total = 0;        // tasks this slot has run over all its processes
  double setup_seconds = 0;    // from start request to ready (zygote: the fork; the setups ran in the template)
  int restarts = 0;
  std::vector<std::string> restart_reasons;  // why each earlier process ended
  // Memory of the current process when the statistics were read. PSS splits
  // shared pages among the processes sharing them, so in zygote mode it shows
  // what the copy-on-write template saves (rss - pss).
  long rss_bytes = 0;
  long pss_bytes = 0;
  // Setups the current process ran on a first task (analyses not preloaded);
  // in spawn mode the preloaded ones are in setup_seconds.
  double task_setup_seconds = 0;
};

// Tasks and time of one analysis in a pool.
struct AnalysisStats {
  long tasks_ok = 0;
  long tasks_failed = 0;
  double seconds = 0;  // summed time inside the workers (a first task's includes a setup run for it)
  // Every run of the analysis's setup, in the template and in workers (at
  // start or on a first task), and their summed time: the real setup cost.
  long setups = 0;
  double setup_seconds = 0;
};

// One machine of a pool across MPI ranks (mathpool/mpi.hpp).
struct NodeStats {
  int rank = 0;
  std::string node;    // host name
  int workers = 0;
  long holding = 0;    // tasks given to it, not yet answered
  long tasks_done = 0;
};

struct PoolStats {
  double uptime_seconds = 0;
  long batches = 0;  // calls of submit_all/map
  long tasks_submitted = 0;
  long tasks_ok = 0;
  long tasks_failed = 0;
  long queued = 0;     // tasks waiting for a worker
  long in_flight = 0;  // tasks handed to workers, not yet finished
  std::vector<WorkerStats> workers;
  std::map<std::string, AnalysisStats> analyses;
  // Zygote mode: the warm template (0 in spawn mode or while it restarts).
  int template_pid = 0;
  double template_setup_seconds = 0;  // plugin load + setups of the current template
  long template_rss_bytes = 0;
  long template_pss_bytes = 0;
  // Zygote was asked but workers are spawned, and why (the setups left
  // threads running in the template); empty otherwise.
  std::string start_note;
  bool parked = false;  // workers stopped while idle (Pool::park); the next task starts them
  // A pool across MPI ranks: every node, rank 0 first. The counts above are
  // those of rank 0's own pool, except `queued`, which adds the tasks rank 0
  // has not yet given to any node. Empty for other pools.
  std::vector<NodeStats> nodes;
};

namespace detail {
struct PoolAccess;    // the library's own access to a pool's counts
struct StreamAccess;  // the library's own access to a stream's bytes
}  // namespace detail

// A pool of worker processes that load the plugins once and serve tasks until
// shutdown. Thread-safe: any thread may submit and read statistics. Owns its
// workers; destroying the pool waits for submitted tasks, then stops them.
class Pool {
 public:
  // Starts the workers and waits until they are ready. Throws mathpool::Error
  // (kind plugin_error) when a plugin cannot be loaded or no worker starts.
  explicit Pool(PoolOptions options = {});
  // A pool across the ranks of an MPI job (mathpool/mpi.hpp), made on rank 0:
  // each rank runs `options.workers` workers (0: its machine's cores, shared
  // among the job's ranks on that machine). Throws
  // mathpool::Error as above, naming the node, or invalid_config without MPI.
  Pool(MpiJob& job, PoolOptions options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  std::future<TaskResult> submit(std::string analysis, Value params);
  // Submits many tasks at once (one batch); futures in the same order.
  std::vector<std::future<TaskResult>> submit_all(std::vector<TaskSpec> tasks);
  // Runs `analysis` over every parameter set; results in the same order.
  std::vector<TaskResult> map(const std::string& analysis, std::vector<Value> params);
  // Runs `analysis` over the parameter sets `source` yields until it returns
  // nullopt, handing each result to `sink` in the same order as soon as it
  // and every earlier one are done. Holds at most `window` tasks at once
  // (0: automatic), so any number of tasks runs in bounded memory. Blocks
  // until the last result is handed over; returns the number of tasks.
  std::size_t map_stream(const std::string& analysis, const std::function<std::optional<Value>()>& source,
                         const std::function<void(TaskResult&&)>& sink, std::size_t window = 0);

  // Checks parameter sets of `analysis` in a worker, without its setup:
  // the documented parameters and the analysis's own check (Analysis::check).
  // Returns each set's problems, in order (empty: nothing found). Throws
  // mathpool::Error when the check cannot run (an unknown analysis, a worker
  // that died doing it). Thread-safe, as submit().
  std::vector<std::vector<ParamProblem>> check(const std::string& analysis, const std::vector<Value>& sets);

  // The analyses the workers loaded: a list of maps (name, version,
  // description, plugin, params, results).
  const Value& catalogue() const noexcept;
  const Value* find_analysis(std::string_view name) const noexcept;
  const std::vector<std::filesystem::path>& plugin_files() const noexcept;
  int size() const noexcept;
  PoolStats stats() const;

  // Fails with `error` every task still queued in the pool, not yet handed to
  // a worker (used on interrupt). Tasks a worker holds already (a chunk) run
  // to completion; terminate() stops those too.
  void cancel_pending(const TaskError& error);
  // Waits for submitted tasks, then stops the workers. Idempotent.
  void shutdown();
  // Waits at most `grace` for submitted tasks, then stops the workers as
  // terminate() does. Idempotent.
  void shutdown(std::chrono::milliseconds grace);
  // Stops the workers now; running and queued tasks fail with `crashed`.
  void terminate();

  // Stops the workers as soon as nothing is queued or running, and keeps the
  // zygote template (and the plugins' setups in it): an idle pool then holds
  // one process. The next task, or unpark(), starts the workers again without
  // waiting for them. Neither call blocks.
  void park();
  // Starts the workers of a parked pool in the background (tasks wait for them).
  void unpark();
  // Whether the pool still takes tasks: not shut down, and made by this process.
  bool serving() const noexcept;

  class Impl;

 private:
  friend class TaskStream;
  friend struct detail::PoolAccess;
  std::unique_ptr<Impl> impl_;
};

// Tasks streamed through a pool: push tasks, take results in the order they
// were pushed. At most window() tasks are in flight, so memory is bounded
// however many pass; retries and blame are those of Pool::map. Tasks go to
// the pool in batches, and results are decoded on the caller's thread.
//
//   mathpool::TaskStream stream(pool);
//   for (long x = 0; x < n; ++x) {
//     if (stream.full()) consume(*stream.next());
//     stream.push("example.echo", {{"x", x}});
//   }
//   while (auto result = stream.next()) consume(*result);
//
// Not thread-safe: one thread pushes and takes. Several streams may share a
// pool. The pool must outlive the stream; destroying a stream waits for the
// tasks still in flight and drops their results.
class TaskStream {
 public:
  explicit TaskStream(Pool& pool, std::size_t window = 0);  // 0: automatic
  ~TaskStream();
  TaskStream(const TaskStream&) = delete;
  TaskStream& operator=(const TaskStream&) = delete;

  std::size_t window() const noexcept;
  std::size_t in_flight() const noexcept;
  bool full() const noexcept { return in_flight() >= window(); }
  // Queues a task. Precondition: !full().
  void push(std::string_view analysis, const Value& params);
  // The result of the oldest task in flight, waiting for it; nullopt when
  // nothing is in flight.
  std::optional<TaskResult> next();

  class Core;  // the library's own byte-level interface (not part of the API)

 private:
  friend struct detail::StreamAccess;
  std::unique_ptr<Core> core_;
};

// The plugin files a pool with these options would load, in load order.
// Throws mathpool::Error naming a path that is refused.
std::vector<std::filesystem::path> find_plugin_files(const PoolOptions& options);

// The process-wide default pool, created on first use and shut down at exit:
// tasks still running then get at most two seconds before the workers are
// stopped. The pool object itself stays valid to the end of the process, so
// a thread still using it at exit gets "the pool is shut down" errors, not a
// crash. Its options are, in order: those given to set_default_pool_options(),
// or defaults with MATHPOOL_WORKERS (a number) and MATHPOOL_START (spawn or
// zygote) from the environment; MATHPOOL_PLUGIN_PATH applies to every pool.
// Thread-safe.
Pool& default_pool();
// Sets the default pool's options; throws mathpool::Error (invalid_config)
// once the default pool exists. Thread-safe.
void set_default_pool_options(PoolOptions options);

}  // namespace mathpool
