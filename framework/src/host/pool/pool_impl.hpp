// pool_impl.hpp: the machinery behind mathpool::Pool.
//
// One dispatcher thread owns the worker processes and the run queue; other
// threads only hand it tasks (under `mutex_`) and wake it through an eventfd.
// Data flows one way: submit/stream -> queue -> worker -> result -> completion.
// Parameters and results stay MessagePack bytes all the way through.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <unistd.h>

#include "channel.hpp"
#include "messages.hpp"
#include "thread_annotations.hpp"
#include "cgroup.hpp"
#include "completion.hpp"
#include "local_pool.hpp"
#include "task_queue.hpp"
#include "worker_process.hpp"
#include "slot_logic.hpp"
#include "supervisor_client.hpp"
#include "mathpool/pool.hpp"

namespace mathpool {

namespace pool_detail {

using detail::kProtocolVersion;
inline constexpr auto kTerminateGrace = std::chrono::milliseconds(200);
inline constexpr auto kRetireGrace = std::chrono::seconds(2);
inline constexpr int kMaxStartFailures = 3;
inline constexpr int kQuarantineAfter = 2;   // setup crashes before an analysis is quarantined
inline constexpr int kMaxOutsideKills = 20;  // outside SIGKILLs at start before they count as failures
inline constexpr auto kForkTimeout = std::chrono::seconds(5);      // a supervisor's answer to a fork request
inline constexpr auto kReportGrace = std::chrono::seconds(2);      // a supervisor's report of a worker's exit
inline constexpr int kMaxRefunds = 5;  // uncharged re-runs of a task (its worker died of something else)

using detail::error_result;

}  // namespace pool_detail

class Pool::Impl final : public detail::LocalPool {
 public:
  using Clock = std::chrono::steady_clock;

  // One task on its way, and where tasks go first in a pool across MPI
  // ranks (local_pool.hpp).
  using Task = detail::PoolTask;
  using Router = detail::TaskRouter;

  explicit Impl(PoolOptions options);
  ~Impl() override;

  // Hands tasks to the router if there is one, else to enqueue_local().
  // Thread-safe.
  void enqueue(std::vector<Task>& tasks, bool batch);
  // Hands tasks to this pool's dispatcher (moved out of `tasks`). Thread-safe.
  void enqueue_local(std::vector<Task>& tasks, bool batch) override;
  // Installs the router; before any task is enqueued.
  void set_router(std::unique_ptr<Router> router) override { router_ = std::move(router); }
  int local_size() const noexcept override { return static_cast<int>(options_.workers); }
  std::future<TaskResult> submit(std::string analysis, Value params);
  // As submit(), always on this pool's own workers (never routed to other
  // MPI ranks): checks, which must not count as the router's work.
  std::future<TaskResult> submit_local(std::string analysis, Value params);
  const Value& catalogue() const noexcept { return catalogue_; }
  const std::vector<std::filesystem::path>& plugin_files() const noexcept { return plugin_files_; }
  int size() const noexcept { return router_ ? router_->workers() : local_size(); }
  // Without `memory`, the workers' rss_bytes and pss_bytes stay 0: no read of
  // /proc/PID/smaps_rollup, which walks each process's page tables.
  PoolStats stats(bool memory = true) const;
  void cancel_pending(const TaskError& error) override;
  void shutdown() override;
  void shutdown(std::chrono::milliseconds grace);
  void terminate() override;
  // Parking (pool_parking.cpp): the workers stop while idle, the template stays.
  void park();
  void unpark();
  bool serving() const noexcept;

 private:
  // The lifecycle of a worker slot is the table in slot_logic.hpp. Every
  // change of state goes through enter(), which checks it against the table
  // (always; an invalid change is reported as an internal error) and sets
  // the state's one deadline; when that passes, on_slot_deadline() acts.
  //
  // A worker's death is seen from its pidfd, its channel or its supervisor's
  // `exited` report, whichever comes first (begin_death: what the host saw
  // is noted, the process is killed); it is judged when the report comes
  // (conclude_death, by detail::blame). A wait status becomes a verdict in
  // judge_exit() (worker_process.hpp), nowhere else.
  using SlotState = detail::SlotState;
  using RunningTask = detail::RunningTask;
  // What the host noted when it saw a worker die, judged once the status comes.
  struct DeathNote {
    std::string why;                      // "" : the wait status says it
    std::optional<RunningTask> running;   // by the host's observations and the checked page
    bool setup_running = false;
    bool was_starting = false;
    bool hung = false;
    bool supervisor_lost = false;         // its supervisor died: nothing it ran is to blame
    bool channel_closed_alive = false;    // its channel closed while it lived: the host kills it
    std::uint64_t timed_out_task = 0;
    bool timed_out_unbegun = false;       // its page showed no task in flight begun when charged
    std::uint64_t started = 0;            // tasks it began, by its page (0: no page)
    double ran_for = 0;
  };
  struct Slot {
    int index = 0;
    pid_t pid = -1;
    int pidfd = -1;                      // readable when the process has ended
    std::shared_ptr<detail::SupervisorProcess> supervisor;  // its parent (or, forking, the one asked)
    std::uint64_t fork_request = 0;      // forking: the request's number
    detail::Channel channel;
    detail::ProgressMapping progress;
    detail::ProcessCgroup cgroup;        // the process and all it starts; ended with it
    SlotState state = SlotState::stopped;
    Clock::time_point deadline = Clock::time_point::max();  // the state's (table above)
    detail::TaskQueue inflight;  // sent, in order, not yet answered
    std::deque<std::uint64_t> entries_sent;  // run entries its process holds (run_entry.hpp, kKeptEntries)
    Clock::time_point head_since{};      // when inflight.front() could have begun, by the host's clock
    std::uint64_t answered = 0;          // results received from this process
    std::uint64_t timed_out_task = 0;    // stopping_after_timeout: ordinal (1-based) of the task stopped
    bool timed_out_unbegun = false;      // its page showed no task in flight begun when charged
    Clock::time_point started_at;
    int start_failures = 0;
    int outside_kills = 0;         // consecutive SIGKILLs from outside while starting
    std::string in_setup;          // the analysis whose setup the worker announced last
    DeathNote death;               // dying
    WorkerStats stats;
  };
  // Whether a slot's process takes results (it may be dying after a timeout).
  static bool answers(const Slot& slot) {
    return slot.state == SlotState::ready || slot.state == SlotState::stopping_after_timeout;
  }
  static bool has_process(const Slot& slot) {
    return slot.state == SlotState::starting || slot.state == SlotState::hung_in_setup || answers(slot);
  }
  struct Retiring {
    pid_t pid;
    int pidfd;
    std::shared_ptr<detail::SupervisorProcess> supervisor;
    Clock::time_point kill_at;
    detail::ProcessCgroup cgroup;
  };
  // Finding which setup breaks the template's fork (supervisor_lifecycle.cpp):
  // templates with part of the setups are tried until one analysis is left.
  struct Bisection {
    bool active = false;
    std::vector<std::string> suspects;  // the culprit is one of these
    std::vector<std::string> trial;     // the setups the trial template runs
    std::string reason;                 // how the full template failed
    bool confirming = false;            // the last suspect alone is being tried
    std::shared_ptr<detail::SupervisorProcess> probe;
  };

  // Dispatcher thread.
  void run_loop();
  void take_incoming();
  // The one place a slot changes state (worker_lifecycle.cpp).
  void enter(Slot& slot, SlotState next, Clock::time_point deadline = Clock::time_point::max());
  void on_slot_deadline(Slot& slot);
  void start_slot(Slot& slot);
  // A worker could not be started: back off, or fail the start-up.
  void could_not_start(Slot& slot, const std::string& reason);
  // Supervisors (supervisor_lifecycle.cpp): started inside the poll loop;
  // slots that need one wait in waiting_for_supervisor.
  void wait_for_supervisor(Slot& slot);
  void start_supervisor();
  void read_supervisors(Clock::time_point now);
  void handle_supervisor_events(const std::shared_ptr<detail::SupervisorProcess>& supervisor,
                                detail::SupervisorProcess::Events& events);
  void supervisor_ready(const detail::ReadyMessage& ready);
  // The template has threads running: start workers by spawn from now on.
  void spawn_instead(int threads);
  // Workers come from a forking template (zygote, and its setups left no thread).
  bool forking() const { return options_.start == StartMode::zygote && forking_unsafe_.empty(); }
  void worker_forked(const std::shared_ptr<detail::SupervisorProcess>& supervisor,
                     const detail::SupervisorProcess::Forked& forked);
  void supervisor_ended(const std::shared_ptr<detail::SupervisorProcess>& supervisor, const std::string& why);
  // The current supervisor cannot make workers: restart it, then find the setup to blame.
  void supervisor_broken(const std::string& reason);
  void continue_bisection(bool trial_forked);
  void begin_bisection_trial();
  void retire_old_supervisors();
  void dispatch();
  void handle_input(Slot& slot);
  void handle_frame(Slot& slot, const detail::Frame& frame);
  void handle_ready(Slot& slot, const detail::ReadyMessage& message);
  void handle_load_errors(const std::vector<std::string>& errors);
  void handle_result(Slot& slot, const detail::Frame& frame);  // a result or a record
  static void check_outcome(std::uint8_t outcome);  // throws ProtocolError for an unknown error kind
  // Queues `entry` for the slot's process unless it holds it already.
  void send_entry(Slot& slot, const detail::RunEntry& entry);
  Clock::time_point input_read_at_;  // when handle_input() last read a channel (dispatcher thread)
  // A reply the host refused: the running task's error, and the worker goes.
  void refuse_reply(Slot& slot, const std::exception& error);
  // A worker's end, seen (begin_death) and judged (conclude_death).
  // channel_closed: seen as the end of its channel (it may still live).
  void begin_death(Slot& slot, const std::string& why, bool channel_closed = false);
  void conclude_death(Slot& slot, int status);
  void worker_exited(const std::shared_ptr<detail::SupervisorProcess>& supervisor, pid_t pid, int status);
  void retire(Slot& slot, const std::string& reason);
  // Puts tasks back at the queue's front; uncharged ones get their attempt
  // back, at most kMaxRefunds times, after which they are charged (crashed).
  // count_refund false: none is charged a refund (a supervisor's death; suspects).
  void requeue(detail::TaskQueue& tasks, bool charged, const std::string& why = {}, bool count_refund = true);
  void release_channel(Slot& slot);
  void close_process(Slot& slot);
  void check_deadlines(Clock::time_point now);
  void check_task_time(Slot& slot, Clock::time_point now);
  // The running task by the host's observations and the checked page
  // (slot_logic.hpp); time_limit: the one whose time limit counts.
  std::optional<RunningTask> running_task(const Slot& slot, Clock::time_point now, bool time_limit = false) const;
  static detail::HostView host_view(const Slot& slot);
  static std::optional<detail::PageView> page_view(const Slot& slot);  // nullopt: no page
  int poll_timeout_ms(Clock::time_point now) const;
  void fail_startup(const std::string& message);
  // A worker could not start: back off, and after a few failures report them.
  void start_failed(Slot& slot, const std::string& reason);
  // Counts a process death inside `analysis`'s setup; quarantines it after a few.
  void note_setup_crash(const std::string& analysis, const std::string& reason);
  void quarantine(const std::string& analysis, const std::string& reason);
  void finish(Task&& task, detail::RawResult&& result);
  // The error of a task stopped at the time limit on worker `pid`.
  std::string timeout_message(int pid, bool unbegun) const;
  // The result of the next task to finish, to fill in place (its bytes' room
  // is reused), then finish(task) with the same task.
  detail::RawResult& claim_result();
  void finish(const Task& task);
  // Finishes every task of `tasks` (runs of tasks one by one) with that error; empties it.
  void fail_all(detail::TaskQueue& tasks, ErrorKind kind, const std::string& message);
  // The statistics of a finished task (finish() counts them too).
  void count_finished(const Task& task, bool failed, double seconds);
  // An ok record line joined onto the last finished result (RawResult::count);
  // false when the task needs a result of its own.
  bool join_line(const Task& task, std::string_view line);
  void deliver();
  void publish_stats();
  void stop_all_workers();
  void wake();
  // Parks once idle as asked, or starts the workers again for new tasks (pool_parking.cpp).
  void update_parking();
  void park_workers();
  // A worker's report of a setup it ran: its cost goes to the statistics.
  void count_setup(Slot& slot, const detail::SetupMessage& message);

  PoolOptions options_;
  std::filesystem::path worker_program_;
  std::vector<std::filesystem::path> plugin_files_;
  detail::HelloMessage hello_;
  Value catalogue_ = Value::array();
  Clock::time_point created_at_ = Clock::now();
  int wake_fd_ = -1;
  // Written by the dispatcher after each pass: its queue is short enough that
  // tasks submitted now must wake it. When false, they wait in incoming_ for
  // its next pass, which a result or any other event brings before the queue
  // runs out (a wake-up per small submission was a context switch each).
  std::atomic<bool> hungry_{true};
  pid_t owner_ = getpid();  // a forked child of the host program cannot use this pool

  // Shared with submitting threads: guarded by mutex_ (clang -Wthread-safety checks it).
  mutable detail::Mutex mutex_;
  detail::CondVar changed_;
  detail::TaskQueue incoming_ GUARDED_BY(mutex_);
  std::uint64_t next_id_ GUARDED_BY(mutex_) = 0;
  bool startup_done_ GUARDED_BY(mutex_) = false;
  std::string startup_error_ GUARDED_BY(mutex_);
  bool shutdown_requested_ GUARDED_BY(mutex_) = false;
  bool terminate_requested_ GUARDED_BY(mutex_) = false;
  bool stopped_ GUARDED_BY(mutex_) = false;
  std::optional<TaskError> cancel_request_ GUARDED_BY(mutex_);
  bool park_requested_ GUARDED_BY(mutex_) = false;
  bool unpark_requested_ GUARDED_BY(mutex_) = false;
  PoolStats stats_ GUARDED_BY(mutex_);

  // Dispatcher-only.
  detail::CgroupTree cgroups_;  // before the processes it holds, so it outlives them
  detail::TaskQueue queue_;
  std::vector<Slot> slots_;
  std::vector<Retiring> retiring_;
  std::shared_ptr<detail::SupervisorProcess> supervisor_;  // the one new workers come from
  std::vector<std::shared_ptr<detail::SupervisorProcess>> old_supervisors_;  // until their workers are gone
  Clock::time_point supervisor_restart_at_ = Clock::time_point::max();  // a back-off before the next
  int supervisor_failures_ = 0;  // supervisors in a row that could not make a worker
  int supervisor_outside_kills_ = 0;
  // Why workers are spawned although zygote was asked: the setups left
  // threads running in the template (a threaded process cannot be forked
  // safely). Empty while the template forks.
  std::string forking_unsafe_;
  Bisection bisection_;
  std::map<std::string, AnalysisStats> past_setup_costs_;  // of supervisors gone
  long invalid_transitions_ = 0;  // internal errors: slot changes the table does not allow
  // Moving average of worker-reported task time per analysis: a chunk is
  // sized by its own analysis's (a heavy analysis behind a light one must not
  // ride in a light-sized chunk).
  std::unordered_map<std::string, double> mean_by_analysis_;
  std::string last_mean_analysis_;     // the analysis of the last result, and
  double* last_mean_ = nullptr;        // its entry (stable: the map is node-based)
  const detail::RunEntry* last_mean_entry_ = nullptr;  // the last result's run entry, if any
  double mean_seconds_of(const std::string& analysis) const;
  std::map<std::string, int> setup_crashes_;
  bool stopping_ = false;
  bool parked_ = false;  // the workers were stopped by park(); the template lives on
  long finished_ok_ = 0, finished_failed_ = 0;  // published to stats_ once per loop pass
  std::map<std::string, AnalysisStats> analysis_stats_;
  bool stats_dirty_ = false;
  // Finished this pass (the first done_count_), delivered at its end. The
  // entries stay from pass to pass: their results' bytes are reused.
  std::vector<detail::Finished> done_;
  std::size_t done_count_ = 0;
  std::string last_stats_analysis_;          // the analysis of the last finished task, and
  AnalysisStats* last_stats_ = nullptr;      // its statistics (stable: the map is node-based)
  const detail::RunEntry* last_stats_entry_ = nullptr;  // the last finished task's run entry, if any
  std::thread thread_;
  std::unique_ptr<Router> router_;  // last: stopped and destroyed first
};

namespace pool_detail {
// The pool behind what detail::make_local_pool() made (a pool across MPI
// ranks: MpiJob's backend makes it, mathpool::Pool holds it).
std::unique_ptr<Pool::Impl> adopt_local_pool(std::unique_ptr<detail::LocalPool> local);
}  // namespace pool_detail

namespace detail {
// What the library reads of a Pool without the cost the public API has.
struct PoolAccess {
  // Pool::stats() without the workers' memory (rss_bytes, pss_bytes are 0).
  static PoolStats counts(const Pool& pool) { return pool.impl_->stats(false); }
};
}  // namespace detail

}  // namespace mathpool
