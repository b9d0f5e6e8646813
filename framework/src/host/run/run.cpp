#include "mathpool/run.hpp"
#include "run_steps.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include <set>

#include <fmt/format.h>

#include "mathpool/mpi.hpp"
#include "output.hpp"
#include "plugin_search.hpp"
#include "provenance.hpp"
#include "record.hpp"
#include "resume.hpp"
#include "run_entry.hpp"
#include "run_report.hpp"
#include "stream_core.hpp"
#include "sweep.hpp"
#include "trace.hpp"

namespace mathpool {
namespace {

using Clock = std::chrono::steady_clock;

// Whether `v` fits a documented parameter type; types the check does not
// know (free text in a plugin's documentation) pass.
bool fits_type(const Value& v, const std::string& type) {
  if (type == "integer") return v.is_number_integer();
  if (type == "bool") return v.is_boolean();
  if (type == "string") return v.is_string();
  if (type == "list of integers")
    return v.is_array() && std::all_of(v.begin(), v.end(), [](const Value& x) { return x.is_number_integer(); });
  return true;
}

// What a run would refuse in every task of an entry, refused before any task
// runs: parameters the analysis does not take, required ones missing, and
// values (fixed ones, and each sweep axis's first) of a documented type they
// cannot be.
void check_entry_params(const RunConfig& config, std::size_t index, const Value& analysis) {
  const AnalysisEntry& entry = config.analyses[index];
  auto fail = [&](const std::string& key, const std::string& why) {
    throw ConfigError(fmt::format("{}:{}: key 'analyses[{}].{}': {}", config.file.string(), entry.line_of(key), index,
                                  key, why));
  };
  std::vector<std::pair<std::string, Value>> given;  // key in the config, sample value
  for (const auto& [key, value] : entry.params.items()) given.emplace_back("params." + key, value);
  for (const SweepAxis& axis : entry.sweep)
    for (std::size_t k = 0; k < axis.keys().size(); ++k)
      if (!axis.is_label(k))  // labels are not parameters
        given.emplace_back((axis.from_rows() ? "rows." : "sweep.") + axis.keys()[k], axis.value(0, k));
  const Value& documented = analysis.at("params");
  std::string known;
  for (const Value& p : documented) known += (known.empty() ? "" : ", ") + p.value("name", "");
  for (const auto& [key, value] : given) {
    const std::string name = key.substr(key.find('.') + 1);
    const auto doc = std::find_if(documented.begin(), documented.end(),
                                  [&](const Value& p) { return p.value("name", "") == name; });
    if (doc == documented.end()) {
      if (analysis.value("open_params", false)) continue;
      fail(key, fmt::format("unknown parameter '{}' for {} (known: {})", name, entry.analysis,
                            known.empty() ? "none" : known));
    }
    const std::string type = doc->value("type", "");
    if (!value.is_null() && !fits_type(value, type))
      fail(key, fmt::format("parameter '{}' of {} must be {}, got {}", name, entry.analysis,
                            type == "integer" ? "an integer" : type == "bool" ? "true or false"
                                              : type == "string" ? "a string" : "a " + type,
                            value.dump()));
  }
  for (const Value& p : documented) {
    const std::string name = p.value("name", "");
    if (!p.value("default", "").empty()) continue;
    const bool set = std::any_of(given.begin(), given.end(),
                                 [&](const auto& g) { return g.first.substr(g.first.find('.') + 1) == name; });
    if (!set) fail("params", fmt::format("parameter '{}' is required by {}", name, entry.analysis));
  }
}

}  // namespace

std::string_view version() noexcept { return MATHPOOL_VERSION; }

void check_record_fields(const std::vector<std::string>& names) {
  try {
    detail::record_fields(names);
  } catch (const std::invalid_argument& e) {  // the host API throws mathpool::Error only
    throw Error(ErrorKind::invalid_config, e.what());
  }
}

void check_output(const RunConfig& config) {
  if (!config.output) return;
  const std::filesystem::path& out = *config.output;
  std::error_code ec;
  const bool exists = std::filesystem::exists(out, ec);
  const std::filesystem::path dir = out.parent_path().empty() ? "." : out.parent_path();
  if (exists ? ::access(out.c_str(), W_OK) != 0 : ::access(dir.c_str(), W_OK | X_OK) != 0)
    throw ConfigError(fmt::format("{}: key 'output': cannot write output file {} ({})", config.file.string(),
                                  out.string(), std::strerror(errno)));
}

void check_analyses(const RunConfig& config, const Pool& pool) {
  for (std::size_t i = 0; i < config.analyses.size(); ++i) {
    const AnalysisEntry& entry = config.analyses[i];
    if (const Value* analysis = pool.find_analysis(entry.analysis)) {
      check_entry_params(config, i, *analysis);
      continue;
    }
    std::string known;
    for (const Value& a : pool.catalogue())
      known += (known.empty() ? "" : ", ") + a.value("name", "");
    throw ConfigError(fmt::format("{}:{}: key 'analyses[{}].analysis': unknown analysis '{}' "
                                  "(loaded: {})",
                                  config.file.string(), entry.line_of("analysis"), i, entry.analysis,
                                  known.empty() ? "none" : known));
  }
}

std::vector<std::string> check_parameter_sets(const RunConfig& config, Pool& pool) {
  // The sets of the entries of an analysis go to its check together, up to
  // kMaxSets a call (a large entry's worth, as before): one round trip to a
  // worker for a config of small entries, not one per entry.
  constexpr std::uint64_t kMaxSets = 1000;
  struct Checked {
    std::size_t first = 0, count = 0;  // this entry's sets in its analysis's list
  };
  std::vector<std::optional<Checked>> checked(config.analyses.size());
  std::vector<std::string> order;                   // analyses, as the config first names them
  std::map<std::string, std::vector<Value>> sets;  // by analysis
  for (std::size_t i = 0; i < config.analyses.size(); ++i) {
    const AnalysisEntry& entry = config.analyses[i];
    const Value* analysis = pool.find_analysis(entry.analysis);
    if (!analysis || !analysis->value("has_check", false)) continue;
    // Every set of a small entry; of a large one the first, the last and
    // evenly spaced ones between (each axis's first and last values among them).
    const std::uint64_t n = entry.parameter_sets();
    std::vector<std::uint64_t> picks;
    if (n <= kMaxSets) {
      for (std::uint64_t t = 0; t < n; ++t) picks.push_back(t);
    } else {
      for (std::uint64_t k = 0; k < kMaxSets; ++k) picks.push_back(k * (n - 1) / (kMaxSets - 1));
    }
    if (!sets.count(entry.analysis)) order.push_back(entry.analysis);
    std::vector<Value>& list = sets[entry.analysis];
    checked[i] = Checked{list.size(), picks.size()};
    for (std::uint64_t t : picks) {
      std::string bytes;
      entry.encode_params(t, bytes);
      list.push_back(detail::msgpack_to_value(bytes));
    }
  }
  std::map<std::string, std::vector<std::vector<ParamProblem>>> found;
  for (const std::string& analysis : order) {
    const std::vector<Value>& list = sets[analysis];
    auto& problems = found[analysis];
    if (list.size() <= kMaxSets) {
      problems = pool.check(analysis, list);
      continue;
    }
    for (std::size_t at = 0; at < list.size(); at += kMaxSets) {
      const std::vector<Value> part(list.begin() + std::ptrdiff_t(at),
                                    list.begin() + std::ptrdiff_t(std::min<std::size_t>(list.size(), at + kMaxSets)));
      for (auto& p : pool.check(analysis, part)) problems.push_back(std::move(p));
    }
  }
  std::vector<std::string> errors;
  for (std::size_t i = 0; i < config.analyses.size(); ++i) {
    if (!checked[i]) continue;
    const AnalysisEntry& entry = config.analyses[i];
    const auto& problems = found.at(entry.analysis);
    std::set<std::string> seen;  // one line per problem, however many sets share it
    for (std::size_t k = checked[i]->first; k < checked[i]->first + checked[i]->count && k < problems.size(); ++k) {
      for (const ParamProblem& p : problems[k]) {
        std::string key = "params";
        if (!p.param.empty()) {
          if (entry.params.contains(p.param)) key = "params." + p.param;
          for (const SweepAxis& axis : entry.sweep)
            for (const auto& name : axis.keys())
              if (name == p.param) key = (axis.from_rows() ? "rows." : "sweep.") + name;
        }
        std::string line = fmt::format("{}:{}: key 'analyses[{}].{}': {}", config.file.string(), entry.line_of(key), i,
                                       key, p.message);
        if (seen.insert(line).second) errors.push_back(std::move(line));
      }
    }
  }
  return errors;
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

namespace {

// Where records go: whole records to write, a tick while the run waits (a
// compressed output ends its frame), and whether they share the terminal
// the progress line is on.
struct RecordOutput {
  std::function<bool(std::string_view)> write;
  std::function<bool()> tick;
  bool terminal = false;
};

// One task for the run: which it is, and either a task of a run entry (its
// worker writes its record) or its analysis, encoded parameters and record head.
struct PlannedTask {
  detail::TaskTag tag;
  const detail::RunEntry* entry = nullptr;  // outlives the run's pool
  std::uint64_t index = 0;
  std::string_view analysis;  // valid for the whole run
  detail::Bytes params;
  std::string head;
};
// Hands tasks to the run one at a time (`task` as the last call left it).
// False when there are no more.
using NextTask = std::function<bool(PlannedTask& task)>;

// The run's loop: keeps the stream's window full, writes records in task
// order as soon as each and every earlier one is done, flushes whenever it
// would wait, polls for an interrupt before every record.
RunSummary run_stream(Pool& pool, const NextTask& next_task, std::uint64_t total, const RecordOutput& output,
                      const std::vector<std::string>& run_names, const detail::RecordFields& fields,
                      const RunOptions& options, bool terminate_on_interrupt,
                      detail::TraceWriter* trace = nullptr) {
  RunSummary summary;
  detail::Tally tally(run_names);
  // A run of fewer tasks than the smallest automatic window holds them all at once anyway.
  TaskStream stream(pool, total < TaskStream::Core::kMinAutoWindow ? std::size_t(std::max<std::uint64_t>(total, 1)) : 0);
  TaskStream::Core& core = detail::StreamAccess::core(stream);
  // Ok records of consecutive tasks come as one result, written at once; a
  // trace takes each task's own.
  core.joins_lines = trace == nullptr;
  std::vector<PlannedTask> planned(core.window());  // reused: no allocation per task
  std::uint64_t pushed = 0, written = 0;
  std::string buffer;
  constexpr std::size_t kWriteBytes = 256 * 1024;
  detail::Progress progress(options.progress, total);
  bool more = true;
  detail::Bytes params, labels;
  detail::RawResult result;  // reused: its bytes' room goes round the stream's ring
  auto io_failed = [&] {
    pool.cancel_pending({ErrorKind::crashed, "the output cannot be written"});
    throw Error(ErrorKind::io_error, fmt::format("cannot write the output ({})", std::strerror(errno)));
  };
  auto write_buffer = [&] {
    if (buffer.empty()) return;
    if (output.terminal) progress.clear();  // records never run into the progress line
    if (!output.write(buffer)) io_failed();
    buffer.clear();
  };
  for (;;) {
    while (more && !core.full()) {
      PlannedTask& task = planned[pushed % planned.size()];
      if (!(more = next_task(task))) break;
      if (task.entry) core.push(*task.entry, task.index);
      else core.push(task.analysis, std::move(task.params));
      ++pushed;
    }
    if (core.in_flight() == 0) break;
    if (!core.next_ready()) {
      write_buffer();  // about to wait: everything done so far goes out now
      while (!core.wait_next(std::chrono::milliseconds(50))) {
        if (options.interrupted && options.interrupted()) break;
        if (output.tick && !output.tick()) io_failed();
        progress.update(written, summary.failed);
        if (trace) trace->poll(pool);
      }
    }
    // Checked before every record, not only while waiting: a steady stream
    // of results must not hide an interrupt.
    if (options.interrupted && options.interrupted()) {
      write_buffer();
      summary.interrupted = true;
      if (trace) trace->interrupted();
      if (terminate_on_interrupt) pool.terminate();
      else pool.cancel_pending({ErrorKind::crashed, "interrupted"});
      tally.fill(summary);
      return summary;  // records written so far stay; resume runs the rest
    }
    core.take_into(result);
    if (result.count > 1) {  // ok records of tasks from `written` on, checked by the pool
      for (std::uint64_t i = written; i < written + result.count; ++i) tally.add_ok(planned[i % planned.size()].tag);
      summary.ok += result.count;
      buffer += result.payload;
      buffer += '\n';
      written += result.count;
      if (buffer.size() >= kWriteBytes) write_buffer();
      progress.update(written, summary.failed, written == total);
      continue;
    }
    const PlannedTask& task = planned[written % planned.size()];
    const detail::TaskTag& tag = task.tag;
    tally.add(tag, result);
    if (trace) {
      trace->task(run_names[tag.run], task.analysis, tag.task, tag.repeat, result, core.arrived());
      trace->poll(pool);
    }
    ++(result.error ? summary.failed : summary.ok);
    if (result.line) {
      buffer += result.payload;  // checked by the pool: this task's record, one JSON object
    } else if (task.entry) {     // not answered by a worker (crashed, timed out), or routed
      params.clear();
      labels.clear();
      task.entry->encode(task.index, params, labels);
      task.entry->append_head(buffer, task.index, params, labels);
      detail::append_record_tail(buffer, result, fields);
    } else {
      buffer += task.head;
      detail::append_record_tail(buffer, result, fields);
    }
    buffer += '\n';
    ++written;
    if (buffer.size() >= kWriteBytes) write_buffer();
    progress.update(written, summary.failed, written == total);
  }
  write_buffer();
  tally.fill(summary);
  return summary;
}

// Workers, restarts and machines of the run's pool, into its summary.
void add_pool_figures(const Pool& pool, RunSummary& summary) {
  const PoolStats stats = detail::PoolAccess::counts(pool);
  summary.workers = int(stats.workers.size());
  for (const WorkerStats& w : stats.workers) summary.restarts += w.restarts;
  summary.pool_note = stats.start_note;
  if (!stats.nodes.empty()) {
    summary.workers = 0;
    for (const NodeStats& n : stats.nodes) {
      summary.workers += n.workers;
      if (std::find(summary.hosts.begin(), summary.hosts.end(), n.node) == summary.hosts.end())
        summary.hosts.push_back(n.node);
    }
  }
}

}  // namespace

RunSummary run_plan(Pool& pool, std::vector<TaskPlan> plan, std::ostream& out, const RunOptions& options) {
  std::size_t next = 0;
  std::vector<std::string> names;
  const NextTask next_task = [&](PlannedTask& planned) {
    if (next == plan.size()) return false;
    const TaskPlan& task = plan[next++];
    planned.params.clear();
    planned.head.clear();
    detail::append_msgpack(planned.params, task.params.is_null() ? Value::object() : task.params);
    detail::append_record_head(planned.head, detail::record_prefix(task.run, task.analysis), task.task, task.repeat,
                               planned.params);
    planned.analysis = task.analysis;
    auto known = std::find(names.begin(), names.end(), task.run);
    if (known == names.end()) known = names.insert(names.end(), task.run);
    planned.tag = {std::size_t(known - names.begin()), task.task, task.repeat};
    return true;
  };
  RecordOutput output;
  output.write = [&](std::string_view bytes) {
    out.write(bytes.data(), std::streamsize(bytes.size()));
    out.flush();
    return bool(out);
  };
  const auto start = Clock::now();
  std::optional<detail::TraceWriter> trace;
  if (options.trace) {
    trace.emplace(*options.trace, start, "mathpool run_plan");
    trace->pool_ready(pool, start, start);
  }
  RunSummary summary =
      run_stream(pool, next_task, plan.size(), output, names, {}, options, false, trace ? &*trace : nullptr);
  if (trace && !trace->finish(!summary.interrupted))
    throw Error(ErrorKind::io_error, fmt::format("--trace: cannot write {}", options.trace->string()));
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  summary.planned = plan.size();
  add_pool_figures(pool, summary);
  return summary;
}

RunSummary run_config(const RunConfig& config, const RunOptions& options) {
  const auto warn = options.warn ? options.warn
                                 : [](const std::string& message) { std::cerr << "mathpool: warning: " << message << '\n'; };
  if (options.resume && options.force)
    throw ConfigError("--resume and --force cannot be used together: --resume keeps the output's records, "
                      "--force replaces them");
  detail::RecordFields fields;
  try {
    if (config.output_fields) fields = detail::record_fields(*config.output_fields);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(fmt::format("{}: key 'output_fields': {}", config.file.string(), e.what()));
  }
  if (config.output) detail::check_output_policy(*config.output, options.resume, options.force);
  // Held from before its records are read for --resume to the run's end.
  detail::OutputLock output_lock;
  if (config.output) output_lock = detail::OutputLock::take(*config.output);
  std::uint64_t planned = 0;  // saturates, as task counts do
  for (const AnalysisEntry& entry : config.analyses)
    planned = entry.task_count() > UINT64_MAX - planned ? UINT64_MAX : planned + entry.task_count();
  std::optional<detail::FinishedTasks> finished;
  if (options.resume) {
    if (!config.output) throw ConfigError("--resume needs an output file, not standard output");
    finished = detail::scan_for_resume(config, *config.output);
  }
  const std::uint64_t to_run = planned - (finished ? finished->count() : 0);
  RunSummary summary;
  summary.planned = planned;
  summary.skipped = planned - to_run;
  if (finished) {
    std::vector<std::string> names;
    for (const AnalysisEntry& entry : config.analyses) names.push_back(entry.name);
    finished->fill(names, summary);
  }
  if (to_run == 0) return summary;  // nothing left: no pool is started
  check_output(config);  // before any worker starts
  // Provenance beside a regular file (not a terminal, /dev/null or a pipe).
  std::optional<detail::Provenance> provenance;
  if (config.output && detail::is_regular_or_missing(*config.output))
    provenance.emplace(config, options, *config.output, warn);
  const auto start = Clock::now();
  // The trace opens before the pool starts, so a file it cannot write stops
  // the run before any worker does.
  std::optional<detail::TraceWriter> trace;
  if (options.trace)
    trace.emplace(*options.trace, start, fmt::format("mathpool run {}", config.file.filename().string()));
  PoolOptions pool_options = pool_options_for(config, std::size_t(std::min<std::uint64_t>(to_run, 1u << 30)));
  if (provenance && !options.mpi) {
    try {
      provenance->hash_plugins_ahead(find_plugin_files(pool_options));
    } catch (const std::exception&) {
      // The pool, started next, reports what is wrong with the plugins.
    }
  }
  // The entries as workers see them: their tasks travel as index ranges and
  // the workers write the records. Made before the pool, so they outlive its tasks.
  static std::atomic<std::uint64_t> next_entry_id{1};
  std::vector<std::unique_ptr<detail::RunEntry>> run_entries;
  for (const AnalysisEntry& entry : config.analyses)
    run_entries.push_back(std::make_unique<detail::RunEntry>(next_entry_id++, entry, fields));
  std::optional<Pool> pool_storage;
  RunOptions run_options = options;
  if (options.mpi) {
    pool_options.workers = config.pool.workers;  // each machine resolves auto itself
    options.mpi->set_node_timeout(config.mpi_node_timeout);
    pool_storage.emplace(*options.mpi, pool_options);
    // A lost rank stops the run as an interrupt does: the records done so
    // far are written; the caller then ends the job (mathpool/mpi.hpp).
    run_options.interrupted = [job = options.mpi, outer = options.interrupted] {
      return !job->lost().empty() || (outer && outer());
    };
  } else {
    pool_storage.emplace(pool_options);
  }
  Pool& pool = *pool_storage;
  if (trace) trace->pool_ready(pool, start, Clock::now());
  check_analyses(config, pool);
  // What the analyses' own checks find in the parameters, before any task.
  if (const auto problems = check_parameter_sets(config, pool); !problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "\nmathpool: error: ") + p;
    throw ConfigError(all);
  }
  if (provenance) provenance->pool_ready(pool);

  bool started = false;  // the first record is being written: the file is this run's
  const std::unique_ptr<detail::RecordSink> sink = detail::open_sink(
      config.output, options.resume,
      [&] {
        started = true;
        if (provenance) provenance->write(summary, "running");
      },
      output_lock.held());
  // Tasks in run order: entries, their parameter sets, their repeats; those
  // with records already are skipped before anything is encoded.
  std::vector<std::string> run_names;
  for (const AnalysisEntry& entry : config.analyses) run_names.push_back(entry.name);
  std::size_t e = 0;
  std::uint64_t index = 0;  // of entry e's tasks (repeats counted)
  // Each worker holds what it was sent of up to kKeptEntries entries, within
  // its memory_limit: larger data (a CSV of millions of rows) goes task by task.
  constexpr std::size_t kMaxEntryBytes = 8u << 20;
  detail::Bytes labels;
  const NextTask next_task = [&](PlannedTask& planned) {
    for (;;) {
      if (e == run_entries.size()) return false;
      const detail::RunEntry& entry = *run_entries[e];
      if (index == entry.tasks()) {
        index = 0, ++e;
        continue;
      }
      const std::uint64_t this_index = index++;
      if (finished && finished->contains(e, this_index)) continue;
      planned.index = this_index;
      planned.analysis = entry.analysis();
      planned.tag = {e, entry.task_of(this_index), entry.repeat_of(this_index)};
      planned.entry = &entry;
      if (entry.wire().size() > kMaxEntryBytes) {
        // Data too large to send every worker: its tasks travel with their
        // parameters, and the host writes their records.
        planned.entry = nullptr;
        planned.params.clear();
        planned.head.clear();
        labels.clear();
        entry.encode(this_index, planned.params, labels);
        entry.append_head(planned.head, this_index, planned.params, labels);
      }
      return true;
    }
  };
  RecordOutput output;
  output.write = [&](std::string_view bytes) { return sink->write(bytes); };
  output.tick = [&] { return sink->tick(); };
  output.terminal = sink->terminal();
  RunSummary ran;
  try {
    ran = run_stream(pool, next_task, to_run, output, run_names, fields, run_options, true,
                     trace ? &*trace : nullptr);
  } catch (...) {
    pool.terminate();  // do not wait for the rest of a run that has failed
    sink->finish(false);
    throw;
  }
  ran.planned = summary.planned;
  ran.skipped = summary.skipped;
  ran.skipped_by_status = std::move(summary.skipped_by_status);
  ran.skipped_by_run = std::move(summary.skipped_by_run);
  ran.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  add_pool_figures(pool, ran);
  if (trace) {
    trace->poll(pool, true);  // the last deaths
    if (!trace->finish(!ran.interrupted)) warn(fmt::format("--trace: cannot write {}", options.trace->string()));
  }
  if (!sink->finish(!ran.interrupted))
    throw Error(ErrorKind::io_error, fmt::format("cannot write the output ({})", std::strerror(errno)));
  if (provenance && started) {
    provenance->write(ran, ran.interrupted ? "interrupted" : "complete");
    ran.provenance = provenance->path();
  }
  return ran;
}

}  // namespace mathpool
