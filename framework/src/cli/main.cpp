// mathpool: the command line. Subcommands run, plugins, describe, validate;
// see the README. Exit status: 0 all ok, 1 some task failed, 2 nothing ran,
// 3 an MPI rank was lost (run --mpi; records so far kept), 130 interrupted.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "catalogue_json.hpp"
#include "mathpool/config.hpp"
#include "mathpool/mpi.hpp"
#include "mathpool/pool.hpp"
#include "mathpool/run.hpp"
#include "run_report.hpp"
#include "run_steps.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitTaskFailed = 1;
constexpr int kExitNothingRan = 2;
constexpr int kExitInterrupted = 130;

volatile std::sig_atomic_t interrupted = 0;
// The first Ctrl-C stops the run cleanly; a second one (say, during a long
// setup, which cannot be interrupted) ends the command at once.
extern "C" void on_interrupt(int signal) {
  interrupted = 1;
  std::signal(signal, SIG_DFL);
}

constexpr const char* kInterruptedLine = "mathpool: interrupted; finished records are kept, --resume runs the rest\n";

int fail(const std::string& message) {
  std::cerr << "mathpool: error: " << message << '\n';
  return kExitNothingRan;
}

// A one-worker pool that only reports what the plugins provide.
mathpool::Pool catalogue_pool(const std::vector<std::string>& plugin_paths, bool allow_insecure) {
  mathpool::PoolOptions options;
  options.workers = 1;
  options.allow_insecure_plugins = allow_insecure;
  options.preload = std::vector<std::string>{};  // listing needs no setup
  for (const auto& p : plugin_paths) options.plugin_paths.emplace_back(p);
  return mathpool::Pool(options);
}

// What `run` takes beyond the config.
struct RunFlags {
  std::string output;
  std::string trace;  // --trace FILE
  int workers = 0;
  bool resume = false, force = false, quiet = false, mpi = false;
  std::optional<std::vector<std::string>> fields;
  std::vector<std::string> command_line;
};

int cmd_run(const std::string& config_file, const RunFlags& flags, const std::vector<std::string>& plugin_paths,
            bool allow_insecure) {
  const std::string& output = flags.output;
  const int workers = flags.workers;
  const bool mpi = flags.mpi;
  // Under an MPI launcher every rank runs this command: rank 0 runs the
  // config, the others serve it as node agents and never read it.
  std::optional<mathpool::MpiJob> job;
  if (mpi) {
    int no_argc = 0;
    char** no_argv = nullptr;
    try {
      job.emplace(no_argc, no_argv);
    } catch (const std::exception& e) {
      return fail(fmt::format("--mpi: {}", e.what()));
    }
    if (job->rank() != 0) return job->serve();
  }
  mathpool::RunConfig config = mathpool::load_config(config_file);
  if (!output.empty()) {
    config.output.reset();
    if (output != "-") config.output = output;
  }
  if (flags.fields) config.output_fields = *flags.fields;
  if (workers > 0) config.pool.workers = workers;
  for (const auto& p : plugin_paths) config.pool.plugin_paths.emplace_back(p);
  if (allow_insecure) config.pool.allow_insecure_plugins = true;

  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  mathpool::RunOptions options;
  options.resume = flags.resume;
  options.force = flags.force;
  options.progress = !flags.quiet && isatty(STDERR_FILENO) != 0;
  options.command_line = flags.command_line;
  // Under mpirun the line that says so goes out as soon as the run sees the
  // interrupt: mpirun kills the ranks a grace after it forwards the signal,
  // and a pool's shutdown on a loaded machine outlasted it (the line was
  // lost; Mpi.InterruptingTheLauncherKeepsAnInOrderPrefix in CI).
  static bool announced = false;
  options.interrupted = [mpi = job.has_value()] {
    if (interrupted == 0) return false;
    if (mpi && !announced) {
      announced = true;
      std::cerr << kInterruptedLine << std::flush;
    }
    return true;
  };
  options.mpi = job ? &*job : nullptr;
  if (!flags.trace.empty()) options.trace = flags.trace;
  // A lost MPI rank (mpi.node_timeout): the records done so far are written;
  // the job ends at once, since MPI could not finish it (docs/mpi.md).
  auto end_if_lost = [&job] {
    if (!job) return;
    if (const std::string lost = job->lost(); !lost.empty()) {
      // Its text may come from another rank's bytes: shown, never acted on.
      std::cerr << "mathpool: error: " << mathpool::detail::shown(lost) << std::endl;
      job->abort(mathpool::MpiJob::kExitRankLost);
    }
  };
  mathpool::RunSummary summary;
  try {
    summary = mathpool::run_config(config, options);
  } catch (...) {
    end_if_lost();
    throw;
  }
  if (!flags.quiet) std::cerr << mathpool::format_summary(summary) << std::flush;
  end_if_lost();
  if (summary.interrupted) {
    if (job) job->abandon();  // the launcher is ending the other ranks

    if (!announced) std::cerr << kInterruptedLine;
    return kExitInterrupted;
  }
  // A resumed run ends as the whole run would have: failures already in the
  // output count.
  const bool earlier_failed = std::any_of(summary.skipped_by_status.begin(), summary.skipped_by_status.end(),
                                          [](const auto& count) { return count.first != "ok" && count.second; });
  return summary.failed == 0 && !earlier_failed ? kExitOk : kExitTaskFailed;
}

int cmd_plugins(const std::vector<std::string>& plugin_paths, bool allow_insecure, bool json) {
  mathpool::Pool pool = catalogue_pool(plugin_paths, allow_insecure);
  if (json) {
    std::cout << mathpool::detail::plugins_json(pool.catalogue()).dump(2) << '\n';
    return kExitOk;
  }
  for (const mathpool::Value& a : pool.catalogue())
    std::cout << fmt::format("{:<20} {:<8} {}  {}\n", a.value("name", ""), a.value("version", ""),
                             a.value("plugin", ""), a.value("description", ""));
  return kExitOk;
}

int cmd_describe(const std::string& name, const std::vector<std::string>& plugin_paths,
                 bool allow_insecure, bool json) {
  mathpool::Pool pool = catalogue_pool(plugin_paths, allow_insecure);
  const mathpool::Value* a = pool.find_analysis(name);
  if (!a) return fail(fmt::format("unknown analysis '{}'; `mathpool plugins` lists them", name));
  if (json) {
    std::cout << mathpool::detail::analysis_json(*a).dump(2) << '\n';
    return kExitOk;
  }
  std::cout << fmt::format("{} {}: {}\nplugin: {}\n\nparameters:\n", a->value("name", ""),
                           a->value("version", ""), a->value("description", ""),
                           a->value("plugin", ""));
  if (a->at("params").empty())
    std::cout << (a->value("open_params", false) ? "  (any)\n" : "  (none)\n");
  for (const auto& p : a->at("params")) {
    const std::string def = p.value("default", "");
    std::cout << fmt::format("  {:<16} {:<20} {:<14} {}\n", p.value("name", ""), p.value("type", ""),
                             def.empty() ? "(required)" : "default " + def, p.value("meaning", ""));
  }
  std::cout << "\nresult fields:\n";
  for (const auto& f : a->at("results"))
    std::cout << fmt::format("  {:<22} {:<20} {}\n", f.value("name", ""), f.value("type", ""),
                             f.value("meaning", ""));
  return kExitOk;
}

int cmd_validate(const std::string& config_file, const std::vector<std::string>& plugin_paths,
                 bool allow_insecure) {
  mathpool::RunConfig config = mathpool::load_config(config_file);
  std::vector<std::string> paths = plugin_paths;
  for (const auto& p : config.pool.plugin_paths) paths.insert(paths.begin(), p.string());
  mathpool::Pool pool = catalogue_pool(paths, allow_insecure);
  mathpool::check_analyses(config, pool);
  // Every problem the analyses' checks find, each on its own line.
  if (const auto problems = mathpool::check_parameter_sets(config, pool); !problems.empty()) {
    for (const auto& p : problems) std::cerr << "mathpool: error: " << p << '\n';
    return kExitNothingRan;
  }
  mathpool::check_output(config);
  // Counted, never generated: a sweep of any size validates at once.
  std::uint64_t total = 0;
  for (const auto& entry : config.analyses) total += entry.task_count();
  std::cout << fmt::format("{}: ok: {} analyses, {} tasks\n", config_file, config.analyses.size(), total);
  for (const auto& entry : config.analyses)
    std::cout << fmt::format("  {}: {} tasks ({} parameter sets x {} repeats)\n", entry.name, entry.task_count(),
                             entry.parameter_sets(), entry.repeat);
  return kExitOk;
}

// The worker count: a whole number of at least 1. (CLI11's own range check
// would print the largest double as the upper bound.)
std::string check_workers(const std::string& text) {
  int n = 0;
  try {
    std::size_t used = 0;
    n = std::stoi(text, &used);
    if (used != text.size()) n = 0;
  } catch (const std::exception&) {
    n = 0;
  }
  if (n >= 1) return "";
  const std::string shown = text.size() <= 20 ? text : text.substr(0, 20) + "...";
  return fmt::format("must be a whole number of at least 1, got '{}'", shown);
}

// Names an unknown command instead of CLI11's "A subcommand is required"; an
// empty string when `word` (the first argument) is fine.
std::string unknown_command(const CLI::App& app, const std::string& word) {
  if (word.empty() || word[0] == '-') return "";
  std::string names;
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_name() == word) return "";
    names += (names.empty() ? "" : ", ") + sub->get_name();
  }
  return fmt::format("unknown command '{}' (commands: {}; see mathpool --help)", word, names);
}

void add_plugin_options(CLI::App* command, std::vector<std::string>& plugin_paths, bool& allow_insecure) {
  command->add_option("--plugin-path", plugin_paths, "Plugin file or directory (repeatable)");
  command->add_flag("--allow-insecure-plugins", allow_insecure,
                    "Load plugins even when other users could change them");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mathpool: repeated mathematical analyses on a persistent pool of workers"};
  app.require_subcommand(1);
  std::vector<std::string> plugin_paths;
  std::string config_file, analysis, fields;
  RunFlags flags;
  bool allow_insecure = false, json = false;
  app.set_version_flag("--version", "mathpool " + std::string(mathpool::version()));

  auto* run = app.add_subcommand("run", "Run every task of a config, one result record per task");
  run->add_option("CONFIG", config_file, "YAML run configuration")->required();
  run->add_option("-o,--output", flags.output, "Output file (- for standard output; FILE.zst: zstd-compressed)");
  run->add_option("--workers", flags.workers, "Number of workers")
      ->check(CLI::Validator(check_workers, "N>=1", "workers"));
  add_plugin_options(run, plugin_paths, allow_insecure);
  auto* resume = run->add_flag("--resume", flags.resume, "Run only the tasks missing from the output file");
  run->add_flag("--force", flags.force, "Replace an output file that already holds records")->excludes(resume);
  run->add_option("--fields", fields, "Record fields to write, e.g. params,result (run, task, repeat, status always)");
  run->add_flag("-q,--quiet", flags.quiet, "No summary on stderr at the end");
  run->add_option("--trace", flags.trace,
                  "Also write the run as a Chrome trace (JSON) for ui.perfetto.dev or chrome://tracing");
  run->add_flag("--mpi", flags.mpi, "Run across the ranks of an MPI job (start with mpirun or srun)");

  auto* plugins = app.add_subcommand("plugins", "List the analyses the plugins provide");
  add_plugin_options(plugins, plugin_paths, allow_insecure);
  plugins->add_flag("--json", json, "Print a JSON list for programs");

  auto* describe = app.add_subcommand("describe", "Show an analysis's parameters and results");
  describe->add_option("ANALYSIS", analysis, "Analysis name, e.g. lfsr.cycles")->required();
  add_plugin_options(describe, plugin_paths, allow_insecure);
  describe->add_flag("--json", json, "Print a JSON object for programs");

  auto* validate = app.add_subcommand("validate", "Check a config without running anything");
  validate->add_option("CONFIG", config_file, "YAML run configuration")->required();
  add_plugin_options(validate, plugin_paths, allow_insecure);

  if (argc > 1) {
    if (std::string unknown = unknown_command(app, argv[1]); !unknown.empty()) return fail(unknown);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "mathpool: error: " << e.what() << " (see mathpool --help)\n";
    return kExitNothingRan;
  }

  try {
    if (*run) {
      flags.command_line.assign(argv, argv + argc);
      if (run->count("--fields")) {
        flags.fields.emplace();
        for (std::size_t at = 0; at <= fields.size();) {
          const std::size_t comma = std::min(fields.find(',', at), fields.size());
          if (comma > at) flags.fields->push_back(fields.substr(at, comma - at));
          at = comma + 1;
        }
        try {
          mathpool::check_record_fields(*flags.fields);
        } catch (const mathpool::Error& e) {
          return fail(fmt::format("--fields: {}", e.what()));
        }
      }
      return cmd_run(config_file, flags, plugin_paths, allow_insecure);
    }
    if (*plugins) return cmd_plugins(plugin_paths, allow_insecure, json);
    if (*describe) return cmd_describe(analysis, plugin_paths, allow_insecure, json);
    if (*validate) return cmd_validate(config_file, plugin_paths, allow_insecure);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return kExitNothingRan;
}
