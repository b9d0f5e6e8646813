// pool_impl.hpp: the machinery behind mathpool::Pool.
//
// One dispatcher thread owns the worker processes and the run queue; other
// threads only hand it tasks (under `mutex_`) and wake it through an eventfd.
// Data flows one way: submit -> queue -> worker -> result -> promise.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "../common/channel.hpp"
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

inline TaskResult error_result(ErrorKind kind, std::string message, int worker) {
  TaskResult result;
  result.error = TaskError{kind, std::move(message)};
  result.worker = worker;
  return result;
}

}  // namespace pool_detail

class Pool::Impl {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Impl(PoolOptions options);
  ~Impl();

  std::vector<std::future<TaskResult>> submit(std::vector<TaskSpec> tasks, bool batch);
  const Value& catalogue() const noexcept { return catalogue_; }
  const std::vector<std::filesystem::path>& plugin_files() const noexcept { return plugin_files_; }
  int size() const noexcept { return static_cast<int>(options_.workers); }
  PoolStats stats() const;
  void cancel_pending(const TaskError& error);
  void shutdown();
  void terminate();

 private:
  struct Task {
    std::uint64_t id = 0;
    std::string analysis;
    Value params;
    std::promise<TaskResult> promise;
    int attempts = 0;
  };
  using TaskPtr = std::unique_ptr<Task>;

  enum class SlotState { starting, ready, stopped };
  struct Slot {
    int index = 0;
    pid_t pid = -1;
    detail::Channel channel;
    SlotState state = SlotState::stopped;
    std::deque<TaskPtr> inflight;        // sent, in order; the head is running
    Clock::time_point head_started;      // when the head task began
    bool head_timed_out = false;
    Clock::time_point kill_at = Clock::time_point::max();  // SIGKILL after the grace period
    Clock::time_point started_at;
    Clock::time_point respawn_at = Clock::time_point::max();
    int start_failures = 0;
    int outside_kills = 0;
    bool setup_timed_out = false;  // killed because it did not get ready in time  // consecutive SIGKILLs from outside while starting
    std::string in_setup;  // the analysis whose setup the worker announced last
    WorkerStats stats;
  };
  struct Retiring {
    pid_t pid;
    Clock::time_point kill_at;
  };

  // Dispatcher thread.
  void run_loop();
  bool start_template();
  void start_slot(Slot& slot);
  void dispatch();
  std::size_t chunk_limit() const;
  void handle_input(Slot& slot);
  void handle_message(Slot& slot, Value& message);
  void handle_ready(Slot& slot, const Value& message);
  void handle_load_errors(const Value& ready);
  void handle_result(Slot& slot, Value& message);
  void handle_death(Slot& slot, const std::string& why);
  void retire(Slot& slot, const std::string& reason);
  void requeue_unstarted(Slot& slot);
  void release_channel(Slot& slot);
  void check_deadlines(Clock::time_point now);
  int poll_timeout_ms(Clock::time_point now) const;
  void fail_startup(const std::string& message);
  // A worker could not start: back off, and after a few failures report them.
  void start_failed(Slot& slot, const std::string& reason);
  // Counts a process death inside `analysis`'s setup; quarantines it after a few.
  void note_setup_crash(const std::string& analysis, const std::string& reason);
  void finish(TaskPtr task, TaskResult result);
  void stop_all_workers();
  void wake();

  PoolOptions options_;
  std::filesystem::path worker_program_;
  std::vector<std::filesystem::path> plugin_files_;
  Value hello_;
  Value catalogue_ = Value::array();
  Clock::time_point created_at_ = Clock::now();
  int wake_fd_ = -1;

  // Shared with submitting threads.
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<TaskPtr> incoming_;
  std::uint64_t next_id_ = 0;
  bool startup_done_ = false;
  std::string startup_error_;
  bool shutdown_requested_ = false;
  bool terminate_requested_ = false;
  bool stopped_ = false;
  std::optional<TaskError> cancel_request_;
  PoolStats stats_;

  // Dispatcher-only.
  std::deque<TaskPtr> queue_;
  std::vector<Slot> slots_;
  std::vector<Retiring> retiring_;
  detail::ZygoteTemplate zygote_;
  double mean_task_seconds_ = -1;
  std::map<std::string, int> setup_crashes_;
  bool stopping_ = false;  // moving average of worker-reported task time
  std::thread thread_;
};

}  // namespace mathpool
