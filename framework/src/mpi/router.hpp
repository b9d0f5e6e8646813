// router.hpp: rank 0's side of a pool across MPI ranks. It holds the tasks
// submitted to the pool, gives each node (its own local pool included) at
// most a quota of them at once, and completes every task with its node's
// result. One thread of its own talks to MPI.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "local_pool.hpp"
#include "job.hpp"

namespace mathpool::mpi_detail {

class Router final : public detail::TaskRouter {
 public:
  using Task = detail::PoolTask;

  // Asks every other rank to open a local pool with `options`; they start
  // while rank 0 starts its own.
  static void open_nodes(Job& job, const PoolOptions& options);
  // Waits until each node opened by open_nodes() says hello. Throws mathpool::Error (plugin_error) naming the node
  // whose pool could not start. `local` is rank 0's own pool; both it and
  // `job` outlive the router.
  Router(Job& job, detail::LocalPool& local, const PoolOptions& options);
  ~Router() override;

  void enqueue(std::vector<Task>& tasks, bool batch) override;
  void cancel_pending(const TaskError& error) override;
  void stop(bool terminate, std::optional<std::chrono::milliseconds> grace) override;
  int workers() const override { return workers_; }
  void add_stats(PoolStats& stats) override;

 private:
  struct Node {  // nodes_[r] is rank r's
    std::string name;
    std::chrono::steady_clock::time_point heard{};  // when its last message arrived
    int workers = 0;
    std::size_t quota = 0;        // tasks it may hold at once
    std::size_t outstanding = 0;  // given, not yet answered
    long done = 0;
    double mean_seconds = -1;     // of its tasks inside the workers; -1: none yet
    bool closed = false;
    std::set<std::uint64_t> entries;  // the run entries sent to it (its agent holds them)
  };
  // The caller's side of a task a node holds; the id given to the node is
  // its index here plus a generation, so an answer for a task that was
  // already failed (terminate) is recognised and dropped.
  struct Owner {
    detail::Completion* completion = nullptr;
    std::uint64_t seq = 0;
    std::uint32_t generation = 0;
    int node = -1;  // -1: free
    const detail::RunEntry* entry = nullptr;  // a task of a run entry: its record gets "node"
  };
  // Completion of the tasks run by rank 0's own pool.
  class LocalCompletion final : public detail::Completion {
   public:
    explicit LocalCompletion(Router& router) : router_(router) {}
    void complete(std::uint64_t seq, detail::RawResult&& result) override;
    void complete_batch(detail::Finished* first, detail::Finished* last) override;

   private:
    Router& router_;
    std::vector<detail::Finished> answers_;  // reused by complete_batch: the local pool's dispatcher thread only
  };

  void loop();
  bool receive_all();
  // Heartbeats to the agents, about every kHeartbeatInterval.
  void beat();
  // The first agent (not closed) silent for longer than the node timeout:
  // marks the job lost; true when there is one.
  bool find_silent();
  // Marks the job lost for a rank that sent what cannot be read (`why`).
  void end_job(const std::string& why);
  // Once the job has lost a rank, rank 0's program writes what is done and
  // aborts the job (mathpool/mpi.hpp); this ends it when the program does not.
  void abort_if_forgotten();
  bool feed();
  void resize_quota(Node& node);
  void close_nodes(bool terminate);
  // Hands answered tasks to their owners. `answers` are (id, result); ids
  // that are no longer held are skipped. The owners swap their results' room
  // in (TaskStream::Core): what [first, last) holds afterwards is reusable.
  void answer(detail::Finished* first, detail::Finished* last);
  std::uint64_t hold(const Task& task, int node) REQUIRES(mutex_);

  Job& job_;
  detail::LocalPool& local_;
  LocalCompletion local_completion_{*this};
  std::vector<Node> nodes_;  // [0]: rank 0's own pool
  int workers_ = 0;
  std::thread thread_;
  std::chrono::steady_clock::time_point last_beat_{};
  std::chrono::steady_clock::time_point lost_at_{};  // this router found a lost rank
  std::vector<detail::Finished> inbox_;  // the nodes' results, reused: the router's thread only

  detail::Mutex mutex_;
  detail::CondVar changed_;
  std::deque<Task> pending_ GUARDED_BY(mutex_);
  std::vector<Owner> owners_ GUARDED_BY(mutex_);
  std::vector<std::uint32_t> free_ GUARDED_BY(mutex_);
  std::size_t held_ GUARDED_BY(mutex_) = 0;
  bool activity_ GUARDED_BY(mutex_) = false;  // something for the loop to do: skip its sleep
  bool closing_ GUARDED_BY(mutex_) = false;   // stop the loop: close the nodes, then return
  bool terminating_ GUARDED_BY(mutex_) = false;
  bool stopped_ GUARDED_BY(mutex_) = false;
  std::optional<TaskError> cancel_ GUARDED_BY(mutex_);
};

}  // namespace mathpool::mpi_detail
