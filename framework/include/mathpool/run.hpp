// mathpool/run.hpp: running a configuration's tasks and writing result records.
//
//   mathpool::RunConfig config = mathpool::load_config("configs/demo.yaml");
//   mathpool::RunSummary summary = mathpool::run_config(config);  // records to config.output
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "mathpool/config.hpp"
#include "mathpool/pool.hpp"

namespace mathpool {

// mathpool's version, e.g. "0.1.0".
std::string_view version() noexcept;

struct RunOptions {
  bool resume = false;    // skip tasks whose records the output already holds
  // Replace an output file that already holds records (else refused, unless
  // resuming). The file is emptied only when the first new record is written.
  bool force = false;
  bool progress = false;  // a progress line on stderr
  // Polled while waiting; true stops the run (records so far are kept).
  std::function<bool()> interrupted;
  // Rank 0 of an MPI job: the run's pool spans every rank (mathpool/mpi.hpp),
  // each machine with the config's workers (auto: its cores), and records
  // name the machine that ran each task ("node").
  MpiJob* mpi = nullptr;
  // The command that started the run, recorded in the provenance file
  // (FILE.meta.json) written beside a regular output file.
  std::vector<std::string> command_line;
  // Where warnings go (a resumed output whose config or analysis versions
  // changed, a provenance file that cannot be written); default: stderr.
  std::function<void(const std::string& message)> warn;
  // Also write the run as Chrome trace-event JSON to this file (`run
  // --trace FILE`), for https://ui.perfetto.dev or chrome://tracing: a track
  // per worker with a slice per task (past 200,000 tasks, one per worker per
  // 100 ms), the pool's start and setups, instants for deaths, timeouts and
  // restarts. docs/running.md, "Looking at a run: --trace".
  std::optional<std::filesystem::path> trace;
};

// One task that did not succeed.
struct TaskFailure {
  std::string run;
  std::uint64_t task = 0;
  int repeat = 0;
  std::string kind;  // error kind, e.g. "invalid_params"
  std::string message;
};

struct RunSummary {
  std::size_t planned = 0;  // tasks in the config
  std::size_t skipped = 0;  // already in the output (resume)
  std::size_t ok = 0;
  std::size_t failed = 0;
  bool interrupted = false;
  // This run's tasks by status ("ok", "error", "timeout", "crashed", "memory"),
  // and by run name (entries in config order) and status.
  std::map<std::string, std::size_t> by_status;
  std::vector<std::pair<std::string, std::map<std::string, std::size_t>>> by_run;
  // Under --resume, the records the output held before this run, counted the
  // same way: the output at the end holds these and this run's.
  std::map<std::string, std::size_t> skipped_by_status;
  std::vector<std::pair<std::string, std::map<std::string, std::size_t>>> skipped_by_run;
  std::vector<TaskFailure> failures;  // the first few (kMaxFailures), in task order
  static constexpr std::size_t kMaxFailures = 5;
  double seconds = 0;  // wall time from the start of the pool to the last record
  int workers = 0;     // worker processes (every machine's, under MPI)
  int restarts = 0;    // worker processes replaced during the run
  std::string pool_note;  // PoolStats::start_note at the end (zygote asked, workers spawned)
  std::vector<std::string> hosts;                     // machines that ran tasks
  std::optional<std::filesystem::path> provenance;    // FILE.meta.json, when written
};

// The summary `mathpool run` prints on stderr: a few lines, each ending in '\n'.
std::string format_summary(const RunSummary& summary);

// Runs a whole config: builds its pool, writes to its output (stdout when
// none), honours resume. Throws mathpool::Error: ConfigError (kind
// invalid_config) for the config, its output or a resume file that does not
// belong to it; plugin_error when the pool cannot start; io_error when the
// output cannot be written.
RunSummary run_config(const RunConfig& config, const RunOptions& options = {});

}  // namespace mathpool
