// mathpool/config.hpp: run configurations (YAML) and the tasks they expand to.
//
//   mathpool::RunConfig config = mathpool::load_config("configs/demo.yaml");
//   std::vector<mathpool::TaskPlan> plan = mathpool::expand_tasks(config);
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "mathpool/pool.hpp"
#include "mathpool/value.hpp"

namespace mathpool {

// A configuration that cannot be used. what() is "FILE:LINE: key 'K': reason".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One sweep axis: a parameter and the values it takes.
struct SweepAxis {
  std::string key;
  std::vector<Value> values;
};

// One entry of `analyses:`.
struct AnalysisEntry {
  std::string name;      // unique in the config; the `run` of its records
  std::string analysis;  // e.g. "lfsr.cycles"
  Value params = Value::object();
  std::vector<SweepAxis> sweep;  // cartesian product, last axis fastest
  int repeat = 1;
  int line = 0;  // where the entry starts, for messages
};

// A parsed configuration. Paths are already resolved against the file's folder.
struct RunConfig {
  std::filesystem::path file;
  PoolOptions pool;           // pool.workers == 0 means auto
  std::optional<std::filesystem::path> output;  // nullopt: standard output
  std::vector<AnalysisEntry> analyses;
};

// Reads and checks a configuration; throws ConfigError naming file, line, key.
RunConfig load_config(const std::filesystem::path& file);
// Same, from text (`file` is used for messages and relative paths).
RunConfig parse_config(const std::string& yaml, const std::filesystem::path& file);

// One task of a run, in run order.
struct TaskPlan {
  std::string run;       // the entry's name
  std::string analysis;
  std::size_t task = 0;  // index of the parameter set within its entry
  int repeat = 0;
  Value params;
};

std::vector<TaskPlan> expand_tasks(const RunConfig& config);

// Parses "30s", "250ms", "2m", "1h", a bare number of seconds, or "none".
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text);
// Parses "2GiB", "512MiB", "1024KiB", a bare number of bytes, or "none" (0);
// at least 1MiB.
std::int64_t parse_memory(const std::string& text);

}  // namespace mathpool
