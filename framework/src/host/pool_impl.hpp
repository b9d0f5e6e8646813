// pool_impl.hpp: the machinery behind mathpool::Pool.
//
// One dispatcher thread owns the worker processes and the run queue; other
// threads only hand it tasks (under `mutex_`) and wake it through an eventfd.
// Data flows one way: submit/stream -> queue -> worker -> result -> completion.
// Parameters and results stay MessagePack bytes all the way through.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include <unistd.h>

#include "../common/channel.hpp"
#include "completion.hpp"
#include "worker_process.hpp"
#include "zygote_client.hpp"
#include "mathpool/pool.hpp"

namespace mathpool {

namespace pool_detail {

using detail::kProtocolVersion;
inline constexpr auto kTerminateGrace = std::chrono::milliseconds(200);
inline constexpr auto kRetireGrace = std::chrono::seconds(2);
inline constexpr int kMaxStartFailures = 3;
inline constexpr int kQuarantineAfter = 2;   // setup crashes before an analysis is quarantined
inline constexpr int kMaxOutsideKills = 20;  // outside SIGKILLs at start before they count as failures

inline detail::RawResult error_result(ErrorKind kind, std::string message, int worker) {
  detail::RawResult result;
  result.error = TaskError{kind, std::move(message)};
  result.worker = worker;
  return result;
}

}  // namespace pool_detail

class Pool::Impl {
 public:
  using Clock = std::chrono::steady_clock;

  // One task on its way: encoded parameters and where its result goes.
  struct Task {
    std::uint64_t id = 0;
    std::string analysis;
    detail::Bytes params;  // MessagePack map
    detail::Completion* completion = nullptr;
    std::uint64_t seq = 0;  // the completion's own number for the task
    int attempts = 0;
  };

  // Where tasks go before this pool's own queue, when one is set: a pool
  // across MPI ranks spreads them over its nodes and hands this pool its share
  // through enqueue_local(). Thread-safe; stop() is idempotent and runs before
  // the local pool stops, so the router may still feed it until then.
  class Router {
   public:
    virtual ~Router() = default;
    virtual void enqueue(std::vector<Task>& tasks, bool batch) = 0;
    virtual void cancel_pending(const TaskError& error) = 0;
    // Waits for the routed tasks (at most `grace`, then as terminate), or
    // with `terminate` fails them at once; then releases the other nodes.
    virtual void stop(bool terminate, std::optional<std::chrono::milliseconds> grace) = 0;
    virtual int workers() const = 0;  // over every node
    // Adds what only the router knows: its queue and its nodes.
    virtual void add_stats(PoolStats& stats) = 0;
  };

  explicit Impl(PoolOptions options);
  ~Impl();

  // Hands tasks to the router if there is one, else to enqueue_local().
  // Thread-safe.
  void enqueue(std::vector<Task>& tasks, bool batch);
  // Hands tasks to this pool's dispatcher (moved out of `tasks`). Thread-safe.
  void enqueue_local(std::vector<Task>& tasks, bool batch);
  // Installs the router; before any task is enqueued.
  void set_router(std::unique_ptr<Router> router) { router_ = std::move(router); }
  int local_size() const noexcept { return static_cast<int>(options_.workers); }
  std::future<TaskResult> submit(std::string analysis, Value params);
  const Value& catalogue() const noexcept { return catalogue_; }
  const std::vector<std::filesystem::path>& plugin_files() const noexcept { return plugin_files_; }
  int size() const noexcept { return router_ ? router_->workers() : local_size(); }
  PoolStats stats() const;
  void cancel_pending(const TaskError& error);
  void shutdown();
  void shutdown(std::chrono::milliseconds grace);
  void terminate();
  // Parking (pool_parking.cpp): the workers stop while idle, the template stays.
  void park();
  void unpark();
  bool serving() const noexcept;

 private:
  // The lifecycle of a worker slot, written down once:
  //
  //   stopped --start_slot--> starting --ready message--> ready
  //   starting --death / setup_timeout (SIGKILL, setup_timed_out)--> stopped, respawn_at after a
  //            back-off (outside SIGKILLs: 10 ms, up to kMaxOutsideKills in a row; others count
  //            toward kMaxStartFailures and, inside a setup, toward quarantine)
  //   ready --task overruns its limit (page)--> ready with timed_out_task set: SIGTERM, then
  //            SIGKILL at kill_at; its death or late result ends it
  //   ready --death (pidfd, end of stream, protocol error)--> stopped, started again at once;
  //            blame from the progress page (handle_death)
  //   ready --recycle, out-of-memory retire, late result after a timeout--> retire(): the
  //            process goes to `retiring_` (exit message, SIGKILL after a grace), the slot starts anew
  //   any --pool stops--> stopped for good (stopping_)
  //
  // A wait status becomes a verdict in judge_exit() (worker_process.hpp), nowhere else.
  enum class SlotState { starting, ready, stopped };
  struct Slot {
    int index = 0;
    pid_t pid = -1;
    int pidfd = -1;                      // readable when the process has ended
    detail::Channel channel;
    detail::ProgressMapping progress;
    SlotState state = SlotState::stopped;
    std::deque<Task> inflight;           // sent, in order, not yet answered
    std::uint64_t answered = 0;          // results received from this process
    std::uint64_t timed_out_task = 0;    // ordinal (1-based) of the task stopped at its limit; 0: none
    Clock::time_point kill_at = Clock::time_point::max();  // SIGKILL after the grace period
    Clock::time_point started_at;
    Clock::time_point respawn_at = Clock::time_point::max();
    int start_failures = 0;
    int outside_kills = 0;         // consecutive SIGKILLs from outside while starting
    bool setup_timed_out = false;  // killed because it did not get ready in time
    std::string in_setup;          // the analysis whose setup the worker announced last
    WorkerStats stats;
  };
  struct Retiring {
    pid_t pid;
    Clock::time_point kill_at;
  };

  // Dispatcher thread.
  void run_loop();
  void take_incoming();
  bool start_template();
  void start_slot(Slot& slot);
  void dispatch();
  std::size_t chunk_limit() const;
  void handle_input(Slot& slot);
  void handle_frame(Slot& slot, const detail::Frame& frame);
  void handle_ready(Slot& slot, const Value& message);
  void handle_load_errors(const Value& ready);
  void handle_result(Slot& slot, const detail::Frame& frame);
  void handle_death(Slot& slot, const std::string& why);
  void retire(Slot& slot, const std::string& reason);
  void requeue(std::deque<Task>& tasks, bool charged);
  void release_channel(Slot& slot);
  void close_process(Slot& slot);
  void check_deadlines(Clock::time_point now);
  void check_task_time(Slot& slot, Clock::time_point now);
  // The task a worker has begun and not finished, from its progress page: its
  // ordinal (1-based, since the worker started) and when it began.
  struct RunningTask {
    std::uint64_t ordinal;
    Clock::time_point since;
  };
  static std::optional<RunningTask> running_task(const Slot& slot);
  int poll_timeout_ms(Clock::time_point now) const;
  void fail_startup(const std::string& message);
  // A worker could not start: back off, and after a few failures report them.
  void start_failed(Slot& slot, const std::string& reason);
  // Counts a process death inside `analysis`'s setup; quarantines it after a few.
  void note_setup_crash(const std::string& analysis, const std::string& reason);
  void finish(Task&& task, detail::RawResult&& result);
  void deliver();
  void publish_stats();
  void stop_all_workers();
  void wake();
  // Parks once idle as asked, or starts the workers again for new tasks (pool_parking.cpp).
  void update_parking();
  void park_workers();
  // A worker's report of a setup it ran: its cost goes to the statistics.
  void count_setup(Slot& slot, const Value& message);

  PoolOptions options_;
  std::filesystem::path worker_program_;
  std::vector<std::filesystem::path> plugin_files_;
  Value hello_;
  Value catalogue_ = Value::array();
  Clock::time_point created_at_ = Clock::now();
  int wake_fd_ = -1;
  pid_t owner_ = getpid();  // a forked child of the host program cannot use this pool

  // Shared with submitting threads.
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Task> incoming_;
  std::uint64_t next_id_ = 0;
  bool startup_done_ = false;
  std::string startup_error_;
  bool shutdown_requested_ = false;
  bool terminate_requested_ = false;
  bool stopped_ = false;
  std::optional<TaskError> cancel_request_;
  bool park_requested_ = false;
  bool unpark_requested_ = false;
  PoolStats stats_;

  // Dispatcher-only.
  std::deque<Task> queue_;
  std::vector<Slot> slots_;
  std::vector<Retiring> retiring_;
  detail::ZygoteTemplate zygote_;
  double mean_task_seconds_ = -1;  // moving average of worker-reported task time
  std::map<std::string, int> setup_crashes_;
  bool stopping_ = false;
  bool parked_ = false;  // the workers were stopped by park(); the template lives on
  long finished_ok_ = 0, finished_failed_ = 0;  // published to stats_ once per loop pass
  std::map<std::string, AnalysisStats> analysis_stats_;
  bool stats_dirty_ = false;
  std::vector<detail::Finished> done_;  // finished this pass, delivered at its end
  std::thread thread_;
  std::unique_ptr<Router> router_;  // last: stopped and destroyed first
};

}  // namespace mathpool
