// run_steps.hpp: the steps of a run that the `mathpool` command and the
// tests call one by one (checks before a run, records, resume, the run loop):
// internals of the host library, not part of its public headers. Each throws
// what it says; none is thread-safe unless it says so.
#pragma once

#include <cstddef>
#include <filesystem>
#include <ostream>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "mathpool/config.hpp"
#include "mathpool/pool.hpp"
#include "mathpool/run.hpp"

namespace mathpool {

// The result record of one task (key order as in README.md, "Result records").
Value make_record(const TaskPlan& task, TaskResult result);
// One JSON line; integers beyond signed 64 bits are written as decimal strings.
std::string format_record(Value record);
// The same line as format_record(make_record(task, result)), built in two
// halves so a run can write the first before the task's parameters move
// into the pool: record_head(task) + record_tail(result).
std::string record_head(const TaskPlan& task);
std::string record_tail(TaskResult result);

// (run, task, repeat) of each complete record in a JSON Lines file. A partial
// last line (a killed writer) is cut off the file so appending continues cleanly.
// Throws ConfigError naming the line that is not a record.
using RecordKey = std::tuple<std::string, std::size_t, int>;
std::set<RecordKey> read_finished_records(const std::filesystem::path& output);

// Throws ConfigError when an entry names an analysis the pool does not have,
// or gives it parameters it does not take, lacks a required one, or gives one
// of a documented type it cannot be: what every task would fail with.
void check_analyses(const RunConfig& config, const Pool& pool);
// Runs each analysis's check (Analysis::check, in a worker of `pool`) on the
// parameter sets of its entries (all of a small entry; of a large one the
// first, the last and evenly spaced ones, at most 1000). Returns every
// problem as "FILE:LINE: key 'analyses[I].KEY': message", at the key's own
// line; empty when none. Throws mathpool::Error when a check cannot run.
std::vector<std::string> check_parameter_sets(const RunConfig& config, Pool& pool);
// Throws mathpool::Error (invalid_config) naming a name that is not a record field
// (RunConfig::output_fields).
void check_record_fields(const std::vector<std::string>& names);
// Throws ConfigError when the config's output file cannot be written.
void check_output(const RunConfig& config);

// The pool options of a config for `task_count` tasks (auto workers: the
// available cores, at most the task count).
PoolOptions pool_options_for(const RunConfig& config, std::size_t task_count);

// Runs `plan` on `pool`, writing each record to `out` as soon as it and every
// earlier one are done.
RunSummary run_plan(Pool& pool, std::vector<TaskPlan> plan, std::ostream& out,
                    const RunOptions& options = {});

}  // namespace mathpool
