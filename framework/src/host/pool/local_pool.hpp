// local_pool.hpp: the pool of one machine, as a pool across MPI ranks sees
// it (src/mpi: the router on rank 0, the agent on the other ranks). That
// module is loaded beside the host library and talks to the pool through
// this interface only, never through Pool::Impl.
//
// A task is encoded parameters and the completion its result goes to; the
// router decides which machine runs it, the local pool runs its share.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "completion.hpp"
#include "mathpool/pool.hpp"

namespace mathpool::detail {

class RunEntry;  // run_entry.hpp

// One task on its way: encoded parameters and where its result goes.
struct PoolTask {
  std::uint64_t id = 0;
  std::string analysis;
  Bytes params;  // MessagePack map
  // Or a task of a run entry (`params` empty): the worker makes its parameters
  // from its index and answers with its record (RawResult::line). The entry
  // outlives the task (the run that made it holds it until the pool is done).
  // `analysis` is left empty then: the entry names it (analysis_of()).
  const RunEntry* entry = nullptr;
  std::uint64_t index = 0;
  Completion* completion = nullptr;
  std::uint64_t seq = 0;  // the completion's own number for the task
  int attempts = 0;
  int refunds = 0;  // attempts given back (not its fault); bounded by kMaxRefunds
  bool suspect = false;  // running when a supervisor died: runs alone (slot_logic.hpp, may_send)
  int alone_deaths = 0;  // supervisor deaths while it ran alone; bounded by kMaxRefunds
  std::chrono::steady_clock::time_point sent_at{};
  // A run of `count` tasks of `entry` (never of an analysis alone), consecutive in index, seq and id from
  // this one's, sharing the rest (attempts, sent_at...): how a run's tasks
  // travel from its stream to the pool's queue, one entry for up to kBatch of
  // them, and on to a worker's in-flight list (TaskQueue::take_run). In the
  // queues a run was never sent (attempts 0); what is requeued goes back one
  // by one (split_runs). 1 everywhere else.
  std::uint64_t count = 1;
};

// Task k of a run of tasks (PoolTask::count), as a task of its own.
PoolTask one_of(const PoolTask& run, std::uint64_t k);
// Calls `f` with each task of a run (PoolTask::count) as a task of its own.
template <typename F>
void for_each_task(PoolTask&& task, F&& f) {
  if (task.count == 1) return f(std::move(task));
  for (std::uint64_t k = 0; k < task.count; ++k) f(one_of(task, k));
}

// The task's analysis: its own, or its run entry's.
const std::string& analysis_of(const PoolTask& task) noexcept;
// Whether two tasks are of one analysis (tasks of one entry are, at once).
inline bool same_analysis(const PoolTask& a, const PoolTask& b) noexcept {
  return (a.entry && a.entry == b.entry) || analysis_of(a) == analysis_of(b);
}

// Where tasks go before a local pool's own queue, when one is set: a pool
// across MPI ranks spreads them over its nodes and hands the local pool its
// share through enqueue_local(). Thread-safe; stop() is idempotent and runs
// before the local pool stops, so the router may still feed it until then.
class TaskRouter {
 public:
  virtual ~TaskRouter() = default;
  virtual void enqueue(std::vector<PoolTask>& tasks, bool batch) = 0;
  virtual void cancel_pending(const TaskError& error) = 0;
  // Waits for the routed tasks (at most `grace`, then as terminate), or
  // with `terminate` fails them at once; then releases the other nodes.
  virtual void stop(bool terminate, std::optional<std::chrono::milliseconds> grace) = 0;
  virtual int workers() const = 0;  // over every node
  // Adds what only the router knows: its queue and its nodes.
  virtual void add_stats(PoolStats& stats) = 0;
};

// This machine's workers. Every call is thread-safe.
class LocalPool {
 public:
  virtual ~LocalPool() = default;  // stops the router first, then the workers (as shutdown())
  // Hands tasks to this machine's workers (moved out of `tasks`).
  virtual void enqueue_local(std::vector<PoolTask>& tasks, bool batch) = 0;
  // Installs the router: before any task is enqueued. The router is
  // destroyed before the workers stop.
  virtual void set_router(std::unique_ptr<TaskRouter> router) = 0;
  virtual int local_size() const noexcept = 0;  // this machine's workers
  // Fails every task not yet sent to a worker with `error`.
  virtual void cancel_pending(const TaskError& error) = 0;
  virtual void shutdown() = 0;   // waits for the tasks given; no more are taken
  virtual void terminate() = 0;  // stops at once; running and queued tasks fail
};

// Starts a local pool (as mathpool::Pool does). Throws mathpool::Error as
// Pool's constructor does.
std::unique_ptr<LocalPool> make_local_pool(PoolOptions options);

// A failed task's result.
inline RawResult error_result(ErrorKind kind, std::string message, int worker) {
  RawResult result;
  result.error = TaskError{kind, std::move(message)};
  result.worker = worker;
  return result;
}

}  // namespace mathpool::detail
