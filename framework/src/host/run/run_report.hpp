// run_report.hpp: what a run tells its user while it runs and at its end:
// the progress line (terminal only) and the tally behind the summary.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "completion.hpp"
#include "mathpool/run.hpp"

namespace mathpool::detail {

// Which task a record is: its entry (index into the run names), task, repeat.
struct TaskTag {
  std::size_t run = 0;
  std::uint64_t task = 0;
  int repeat = 0;
};

// The status word of a result ("ok", "error", "timeout", ...).
const char* status_of(const RawResult& result);

// Counts each finished task (cheaply: no map per task), then fills a
// RunSummary: by status, by run, the first failures.
class Tally {
 public:
  explicit Tally(const std::vector<std::string>& run_names) : names_(run_names) {}
  void add(const TaskTag& tag, const RawResult& result);
  // The counts so far into `summary` (by_status, by_run, failures).
  void fill(RunSummary& summary) const;

 private:
  static constexpr std::size_t kStatuses = 5;  // ok, error, timeout, crashed, memory
  const std::vector<std::string>& names_;
  std::vector<std::array<std::size_t, kStatuses>> counts_;  // by run index
  std::vector<TaskFailure> failures_;
};

// "done/total tasks, failures, rate, ETA" on one refreshed stderr line. The
// rate counts from the first record (the pool's start is not task work); the
// ETA waits for a second of records. clear() wipes the line, so records
// written to the same terminal never run into it.
class Progress {
 public:
  using Clock = std::chrono::steady_clock;
  Progress(bool enabled, std::uint64_t total) : enabled_(enabled), total_(total) {}
  ~Progress() { clear(); }
  void update(std::uint64_t done, std::uint64_t failed, bool force = false);
  void clear();

 private:
  bool enabled_;
  std::uint64_t total_;
  bool shown_ = false;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_{};
  Clock::time_point first_{};  // when the first record came (0: not yet)
  std::uint64_t first_done_ = 0;
};

}  // namespace mathpool::detail
