// trace.hpp: `mathpool run --trace FILE` (RunOptions::trace). Writes the run
// as Chrome trace-event JSON, which Perfetto (https://ui.perfetto.dev) and
// chrome://tracing open: {"traceEvents": [...], "displayTimeUnit": "ms",
// "otherData": {...}}. Built only from what the host observes: each record
// (its worker, its seconds, when its result arrived) and the pool's
// statistics (workers, restarts and their reasons, setup times), read at most
// every kStatsInterval. Events stream to the file as they happen; memory does
// not grow with the number of tasks. docs/running.md, "Looking at a run".
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "completion.hpp"
#include "mathpool/pool.hpp"

namespace mathpool::detail {

class TraceWriter {
 public:
  using Clock = std::chrono::steady_clock;
  // Tasks drawn one slice each; past this, each worker's tasks are drawn as
  // one "N tasks" slice per kAggregateWindow (widened tenfold each time
  // another kTaskSliceLimit such slices were written, so a run of any length
  // stays bounded).
  static constexpr std::uint64_t kTaskSliceLimit = 200'000;
  static constexpr std::chrono::milliseconds kAggregateWindow{100};
  // Instants for failed tasks (timeouts, crashes, memory) and deaths; past
  // this they are only counted (otherData.instants_dropped).
  static constexpr std::uint64_t kInstantLimit = 20'000;
  static constexpr std::chrono::milliseconds kStatsInterval{100};

  // Opens (truncates) `file`; throws mathpool::Error (io_error) when it
  // cannot. `start` is the run's time zero. `title` names the host's process.
  TraceWriter(const std::filesystem::path& file, Clock::time_point start, const std::string& title,
              std::uint64_t task_slice_limit = kTaskSliceLimit);
  // Closes the JSON (complete: false) when finish() was not called.
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // The pool was built between `constructed` and `ready`: its slice, the
  // template's setup, each worker's track and setup.
  void pool_ready(const Pool& pool, Clock::time_point constructed, Clock::time_point ready);
  // One record: run name, analysis, task, repeat, status, and its result's
  // worker, seconds and arrival at the host.
  void task(std::string_view run, std::string_view analysis, std::uint64_t task, int repeat,
            const RawResult& result, Clock::time_point arrived);
  // Reads the pool's statistics when kStatsInterval has passed since the last
  // read (at once when `force`): deaths and restarts become instants, new
  // workers get tracks.
  void poll(const Pool& pool, bool force = false);
  void interrupted(Clock::time_point now = Clock::now());
  // Writes what is pending, the host's run slice and otherData, closes the
  // file. False when the file could not be written.
  bool finish(bool complete = true);

  std::uint64_t tasks() const noexcept { return tasks_; }
  std::uint64_t task_slices() const noexcept { return task_slices_; }

 private:
  struct Bucket {  // aggregated tasks of one track in one window
    std::uint64_t window = 0;
    double start = 0, end = 0;
    std::uint64_t tasks = 0, ok = 0, failed = 0;
  };
  struct Track {
    int pid = 0, tid = 0;
    double cursor = 0;  // where its last slice ended (µs): slices never overlap
    double first = -1;  // where its first task began (-1: none yet)
    // A replacement's setup, drawn once its first task shows where it ended.
    double pending_setup = -1;  // seconds
    int slot = -1;
    int restart = 0;
    double ended = -1;  // where a task that killed it ended (-1: none)
    bool started = false;  // its start is drawn (a setup slice or "worker started")
    bool setup_unknown = false;  // seen only at its death: no setup slice, a start at its first task
    double died = -1;  // where its "worker ended" is (-1: alive)
    Bucket bucket;
  };

  double micros(Clock::time_point t) const;
  Track& track(int pid, int tid, const std::string& name);
  Track& worker_track(int worker, const std::string* node);
  Track& slot_track(int pid, int slot, int restart);
  void name_track(int pid, int tid, const std::string& name);
  void begin_event();
  void slice(const Track& t, std::string_view name, std::string_view category, double ts, double dur,
             const std::string& args);
  void instant(const Track& t, std::string_view name, double ts, const std::string& args);
  void flush_bucket(Track& t);
  void replacement_setup(Track& t, double end);
  int node_pid(const std::string* node);
  void watch_workers(const PoolStats& stats, double now);

  void write_out();

  std::FILE* file_ = nullptr;
  std::string out_;  // events not yet written
  std::string last_run_, last_run_json_, last_analysis_, last_analysis_json_;
  Clock::time_point start_;
  bool first_event_ = true;
  bool closed_ = false;
  bool failed_ = false;
  int host_pid_ = 0;
  std::uint64_t task_slice_limit_;
  std::uint64_t tasks_ = 0, task_slices_ = 0, aggregate_slices_ = 0, failed_tasks_ = 0;
  std::uint64_t instants_ = 0, instants_dropped_ = 0, deaths_ = 0;
  double window_us_ = 0;
  std::unordered_map<std::uint64_t, Track> tracks_;  // by (pid << 32 | tid): workers, not tasks
  std::vector<std::string> nodes_;                   // MPI machines, a process each
  struct SlotSeen {
    int pid = 0;
    int restarts = 0;
  };
  std::vector<SlotSeen> slots_;
  std::unordered_map<int, int> slot_of_pid_;
  int template_pid_ = 0;
  const Pool* pool_ = nullptr;  // from pool_ready on
  Clock::time_point last_poll_{};
  Clock::time_point last_flush_{};
};

// `text` as a JSON string, quotes included.
std::string json_string(std::string_view text);

}  // namespace mathpool::detail
