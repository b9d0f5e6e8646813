#include "mathpool/run.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include <fmt/format.h>

#include "plugin_search.hpp"

namespace mathpool {
namespace {

using Clock = std::chrono::steady_clock;

// "done/total, rate, ETA" on one refreshed stderr line.
class Progress {
 public:
  Progress(bool enabled, std::size_t total) : enabled_(enabled), total_(total) {}
  ~Progress() {
    if (enabled_ && shown_) std::fputs("\n", stderr);
  }
  void update(std::size_t done, bool force = false) {
    if (!enabled_) return;
    const auto now = Clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    shown_ = true;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? double(done) / elapsed : 0;
    const double eta = rate > 0 ? double(total_ - done) / rate : 0;
    std::fprintf(stderr, "\r%zu/%zu tasks  %.1f/s  ETA %.0fs   ", done, total_, rate, eta);
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  std::size_t total_;
  bool shown_ = false;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_{};
};

}  // namespace

void check_analyses(const RunConfig& config, const Pool& pool) {
  for (std::size_t i = 0; i < config.analyses.size(); ++i) {
    const AnalysisEntry& entry = config.analyses[i];
    if (pool.find_analysis(entry.analysis)) continue;
    std::string known;
    for (const Value& a : pool.catalogue())
      known += (known.empty() ? "" : ", ") + a.value("name", "");
    throw ConfigError(fmt::format("{}:{}: key 'analyses[{}].analysis': unknown analysis '{}' "
                                  "(loaded: {})",
                                  config.file.string(), entry.line, i, entry.analysis,
                                  known.empty() ? "none" : known));
  }
}

PoolOptions pool_options_for(const RunConfig& config, std::size_t task_count) {
  PoolOptions options = config.pool;
  // Set up what the config uses when a worker starts, nothing else.
  std::vector<std::string> used;
  for (const AnalysisEntry& entry : config.analyses) used.push_back(entry.analysis);
  options.preload = used;
  if (options.workers <= 0) {
    const int cores = detail::available_cores();
    options.workers = static_cast<int>(std::clamp<std::size_t>(task_count, 1, std::size_t(cores)));
  }
  return options;
}

RunSummary run_plan(Pool& pool, std::vector<TaskPlan> plan, std::ostream& out,
                    const RunOptions& options) {
  RunSummary summary;
  summary.planned = plan.size();
  std::vector<TaskSpec> specs;
  specs.reserve(plan.size());
  for (const TaskPlan& task : plan) specs.push_back({task.analysis, task.params});
  auto futures = pool.submit_all(std::move(specs));

  Progress progress(options.progress, futures.size());
  for (std::size_t i = 0; i < futures.size(); ++i) {
    for (;;) {
      // Checked before every record, not only while waiting: a steady stream
      // of results must not hide an interrupt.
      if (options.interrupted && options.interrupted()) {
        summary.interrupted = true;
        pool.cancel_pending({ErrorKind::crashed, "interrupted"});
        return summary;  // records written so far stay; resume runs the rest
      }
      if (futures[i].wait_for(std::chrono::seconds(0)) == std::future_status::ready) break;
      // Poll instead of blocking on each future: the dispatcher then need not
      // wake this thread once per task, and results are drained in bursts.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      progress.update(i);
    }
    TaskResult result = futures[i].get();
    ++(result.ok() ? summary.ok : summary.failed);
    futures[i] = {};  // release the shared state now
    // Formatted here, while the workers go on with later tasks.
    out << record_head(plan[i]) << record_tail(std::move(result)) << '\n';
    // Flush whenever nothing else is ready, so a killed run keeps every record.
    if (i + 1 == futures.size() ||
        futures[i + 1].wait_for(std::chrono::seconds(0)) != std::future_status::ready)
      out.flush();
    if (!out) {
      pool.cancel_pending({ErrorKind::crashed, "the output cannot be written"});
      throw Error(ErrorKind::plugin_error,
                  fmt::format("cannot write the output ({})", std::strerror(errno)));
    }
    progress.update(i + 1, i + 1 == futures.size());
  }
  return summary;
}

RunSummary run_config(const RunConfig& config, const RunOptions& options) {
  std::vector<TaskPlan> plan = expand_tasks(config);
  const std::size_t planned = plan.size();
  if (options.resume) {
    if (!config.output) throw ConfigError("--resume needs an output file, not standard output");
    const auto done = read_finished_records(*config.output);
    std::erase_if(plan, [&](const TaskPlan& t) { return done.count({t.run, t.task, t.repeat}) > 0; });
  }
  const std::size_t to_run = plan.size();
  Pool pool(pool_options_for(config, std::max<std::size_t>(to_run, 1)));
  check_analyses(config, pool);

  std::ofstream file;
  if (config.output) {
    file.open(*config.output, options.resume ? std::ios::app : std::ios::trunc);
    if (!file)
      throw ConfigError(fmt::format("cannot write output file {} ({})", config.output->string(),
                                    std::strerror(errno)));
  }
  std::ostream& out = config.output ? static_cast<std::ostream&>(file) : std::cout;
  RunSummary summary;
  try {
    summary = run_plan(pool, std::move(plan), out, options);
  } catch (...) {
    pool.terminate();  // do not wait for the rest of a run that has failed
    throw;
  }
  summary.planned = planned;
  summary.skipped = planned - to_run;
  if (summary.interrupted) pool.terminate();
  return summary;
}

}  // namespace mathpool
