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
#include "cgroup.hpp"
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
  // The lifecycle of a worker slot, written down once. Every change of state
  // goes through enter(), which checks it against kSlotTransitions (debug
  // builds) and sets the state's one deadline; when that passes,
  // on_slot_deadline() acts.
  //
  //   state                   process  deadline (on_slot_deadline)        leaves for
  //   stopped                 none     none                               starting, waiting_*: start_slot
  //   waiting_to_restart      none     respawn after a back-off:          starting, waiting_*
  //                                    start_slot
  //   waiting_for_template    none     none: started when the zygote      starting, waiting_to_restart
  //                                    template is ready (or failed)
  //   starting                up       setup_timeout: SIGKILL,            ready (ready message);
  //                                    -> hung_in_setup                   stopped (death)
  //   hung_in_setup           dying    none                               stopped (death: "hung in
  //                                                                       start-up", counts against the setup)
  //   ready                   up       the running task's limit, from     stopping_after_timeout;
  //                                    the page (check_task_time):        stopped (death, retire)
  //                                    SIGTERM -> stopping_after_timeout
  //   stopping_after_timeout  dying    SIGKILL after kTerminateGrace      stopped (death: `timeout`
  //                                                                       for the task; or a late result: retire)
  //   any                                                                 stopped (pool stops, for good)
  //
  // After a death (handle_death; blame from the progress page) a slot that
  // was ready starts again at once; one that was starting waits to restart
  // (outside SIGKILLs: 10 ms, up to kMaxOutsideKills in a row; others count
  // toward kMaxStartFailures and, inside a setup, toward quarantine). A
  // retired process (recycle, out of memory, late result after a timeout)
  // goes to `retiring_` (exit message, SIGKILL after a grace) and the slot
  // starts anew. A wait status becomes a verdict in judge_exit()
  // (worker_process.hpp), nowhere else.
  enum class SlotState {
    stopped,
    waiting_to_restart,
    waiting_for_template,
    starting,
    hung_in_setup,
    ready,
    stopping_after_timeout,
  };
  struct Slot {
    int index = 0;
    pid_t pid = -1;
    int pidfd = -1;                      // readable when the process has ended
    detail::Channel channel;
    detail::ProgressMapping progress;
    detail::ProcessCgroup cgroup;        // the process and all it starts; ended with it
    SlotState state = SlotState::stopped;
    Clock::time_point deadline = Clock::time_point::max();  // the state's (table above)
    std::deque<Task> inflight;           // sent, in order, not yet answered
    std::uint64_t answered = 0;          // results received from this process
    std::uint64_t timed_out_task = 0;    // stopping_after_timeout: ordinal (1-based) of the task stopped
    Clock::time_point started_at;
    int start_failures = 0;
    int outside_kills = 0;         // consecutive SIGKILLs from outside while starting
    std::string in_setup;          // the analysis whose setup the worker announced last
    WorkerStats stats;
  };
  // Whether a slot's process takes results (it may be dying after a timeout).
  static bool answers(const Slot& slot) {
    return slot.state == SlotState::ready || slot.state == SlotState::stopping_after_timeout;
  }
  struct Retiring {
    pid_t pid;
    Clock::time_point kill_at;
    detail::ProcessCgroup cgroup;
  };

  // Dispatcher thread.
  void run_loop();
  void take_incoming();
  // The one place a slot changes state (worker_lifecycle.cpp).
  void enter(Slot& slot, SlotState next, Clock::time_point deadline = Clock::time_point::max());
  void on_slot_deadline(Slot& slot);
  void start_slot(Slot& slot);
  // A worker could not be started or forked: back off, or fail the start-up.
  void could_not_start(Slot& slot, const std::string& reason);
  // Zygote mode (template_lifecycle.cpp): the template starts inside the
  // poll loop; slots that need it wait in waiting_for_template.
  void wait_for_template(Slot& slot);
  void begin_template_start();
  void advance_template(Clock::time_point now);
  void template_failed(const std::string& reason);
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
  detail::CgroupTree cgroups_;  // before the processes it holds, so it outlives them
  std::deque<Task> queue_;
  std::vector<Slot> slots_;
  std::vector<Retiring> retiring_;
  detail::ZygoteTemplate zygote_;
  int template_fork_failures_ = 0;  // forks in a row that found the template dead
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
