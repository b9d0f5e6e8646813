// mathpool/config.hpp: run configurations (YAML) and the tasks they expand to.
//
//   mathpool::RunConfig config = mathpool::load_config("configs/demo.yaml");
//   for (const auto& entry : config.analyses) fmt::print("{}: {} tasks\n", entry.name, entry.task_count());
//
// Sweeps are never listed: each axis yields its value at an index, so a run
// of any size is generated as it goes.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "mathpool/pool.hpp"
#include "mathpool/value.hpp"

namespace mathpool {

// A configuration that cannot be used. what() is "FILE:LINE: key 'K': reason".
// One family with every other host error: a mathpool::Error of kind invalid_config.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& message) : Error(ErrorKind::invalid_config, message) {}
};

// One factor of an entry's cartesian product: the values of one sweep key,
// or the rows of a `rows` file (one value per column). Values are kept
// encoded (a list, a CSV's data) or computed (a range, a product, words),
// never expanded. Immutable and cheap to copy; thread-safe.
class SweepAxis {
 public:
  struct Data;
  explicit SweepAxis(std::shared_ptr<const Data> data) : data_(std::move(data)) {}
  // What the axis holds (opaque outside the library, which sends it to workers).
  const std::shared_ptr<const Data>& data() const noexcept { return data_; }

  // The keys this axis sets: one key, or a `rows` file's columns.
  const std::vector<std::string>& keys() const noexcept;
  // Whether keys()[key] is a label: copied into each record's "labels", not a parameter.
  bool is_label(std::size_t key) const noexcept;
  // The number of values. For a `words` axis whose length is another axis's
  // value (length_axis()), the number when that axis has its first value.
  std::uint64_t size() const noexcept;
  // Whether the axis is a `rows` file (else one `sweep` key).
  bool from_rows() const noexcept;
  // A `words` axis whose length names an earlier axis: that axis's position
  // in the entry's `sweep`. size_at(i): the size when that axis is at its value i.
  std::optional<std::size_t> length_axis() const noexcept;
  std::uint64_t size_at(std::uint64_t length_index) const noexcept;
  // Appends each key and its value at `index` (< size()) as MessagePack.
  void encode(std::uint64_t index, std::string& out) const;
  // The same, parameters to `params` and labels to `labels`, with the length
  // axis (if any) at its value `length_index`.
  void encode(std::uint64_t index, std::uint64_t length_index, std::string& params, std::string& labels) const;
  // The value of keys()[key] at `index`, decoded.
  Value value(std::uint64_t index, std::size_t key = 0) const;

 private:
  std::shared_ptr<const Data> data_;
};

// One entry of `analyses:`.
struct AnalysisEntry {
  std::string name;      // unique in the config; the `run` of its records
  std::string analysis;  // e.g. "lfsr.cycles"
  Value params = Value::object();
  // `rows` first, then the sweep keys; the last axis fastest. A cartesian
  // product, except that a `words` axis's length may be an earlier axis's value.
  std::vector<SweepAxis> sweep;
  int repeat = 1;
  int line = 0;  // where the entry starts, for messages
  // Names of `rows` columns or sweep keys written under each record's
  // "labels" rather than passed as parameters, as given in `labels:`.
  std::vector<std::string> labels;
  // The line of each key ("analysis", "params", "params.field", "rows",
  // "rows.COLUMN", "sweep.x", "labels"), for messages.
  std::map<std::string, int> lines;
  int line_of(const std::string& key) const;

  // Parameter sets (the product of the axes' sizes) and tasks (times repeat).
  std::uint64_t parameter_sets() const noexcept;
  std::uint64_t task_count() const noexcept;
  // Appends the MessagePack map of parameter set `task` (< parameter_sets()):
  // `params`, then each axis's keys that are not labels, in that order.
  void encode_params(std::uint64_t task, std::string& out) const;
  // The same, and the map of its labels to `labels` (nothing when the entry has none).
  void encode_task(std::uint64_t task, std::string& params, std::string& labels) const;
};

// A parsed configuration. Paths are already resolved against the file's folder.
struct RunConfig {
  std::filesystem::path file;
  PoolOptions pool;           // pool.workers == 0 means auto
  std::optional<std::filesystem::path> output;  // nullopt: standard output
  // `output_fields:` the record fields to write (nullopt: all); run, task,
  // repeat and status are always written.
  std::optional<std::vector<std::string>> output_fields;
  std::vector<AnalysisEntry> analyses;
  // `mpi: {node_timeout: 30s}`: used by `run --mpi` only (docs/mpi.md). A rank
  // silent for longer than this while the run's pool is open ends the job.
  std::chrono::milliseconds mpi_node_timeout = std::chrono::seconds(30);
};

// Reads and checks a configuration; throws ConfigError naming file, line, key.
RunConfig load_config(const std::filesystem::path& file);
// Same, from text (`file` is used for messages and relative paths).
RunConfig parse_config(const std::string& yaml, const std::filesystem::path& file);

// One task of a run, in run order, with its parameters decoded.
struct TaskPlan {
  std::string run;       // the entry's name
  std::string analysis;
  std::size_t task = 0;  // index of the parameter set within its entry
  int repeat = 0;
  Value params;
};

// Every task of a config, decoded: for small configs, tools and tests only
// (a run generates its tasks as it goes).
std::vector<TaskPlan> expand_tasks(const RunConfig& config);

// Parses "30s", "250ms", "2m", "1h", a bare number of seconds, or "none".
// Throws mathpool::Error (invalid_config) naming the text.
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text);
// Parses "2GiB", "512MiB", "1024KiB", a bare number of bytes, or "none" (0);
// at least 1MiB. Throws mathpool::Error (invalid_config) naming the text.
std::int64_t parse_memory(const std::string& text);

}  // namespace mathpool
