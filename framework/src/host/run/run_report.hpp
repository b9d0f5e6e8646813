// run_report.hpp: what a run tells its user while it runs and at its end:
// the progress line (terminal only) and the tally behind the summary.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "completion.hpp"
#include "record_line.hpp"
#include "mathpool/run.hpp"

namespace mathpool::detail {

// Which task a record is: its entry (index into the run names), task, repeat.
struct TaskTag {
  std::size_t run = 0;
  std::uint64_t task = 0;
  int repeat = 0;
};

// Text as one line that a terminal shows as it is: line breaks and tabs
// become spaces, other control characters (C0, DEL, and C1 as UTF-8) are
// written as a record writes them (\u001b), so an escape sequence in a run's
// name or a task's message cannot act. At most `limit` bytes of the text,
// then "...".
std::string shown(std::string_view text, std::size_t limit = std::string_view::npos);
// The status word of a result ("ok", "error", "timeout", ...).
const char* status_of(const RawResult& result);
// Counts by status (kStatusWords' order) as a summary's map, zeros left out.
std::map<std::string, std::size_t> by_status_map(const std::array<std::uint64_t, kStatuses>& counts);
using StatusCounts = std::vector<std::array<std::uint64_t, kStatuses>>;  // by run entry
// Counts by run entry (names[entry]) as a summary's by_status and by_run.
void fill_counts(const std::vector<std::string>& names, const StatusCounts& counts,
                 std::map<std::string, std::size_t>& by_status,
                 std::vector<std::pair<std::string, std::map<std::string, std::size_t>>>& by_run);

// Counts each finished task (cheaply: no map per task), then fills a
// RunSummary: by status, by run, the first failures.
class Tally {
 public:
  explicit Tally(const std::vector<std::string>& run_names) : names_(run_names) {}
  void add(const TaskTag& tag, const RawResult& result);
  void add_ok(const TaskTag& tag) {  // the same for an ok result
    if (tag.run >= counts_.size()) counts_.resize(tag.run + 1, {});
    ++counts_[tag.run][0];
  }
  // The counts so far into `summary` (by_status, by_run, failures).
  void fill(RunSummary& summary) const;

 private:
  const std::vector<std::string>& names_;
  StatusCounts counts_;  // by run index
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
