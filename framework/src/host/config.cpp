#include "mathpool/config.hpp"

#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include "csv.hpp"
#include "scan.hpp"
#include "sweep.hpp"
#include "yaml_value.hpp"

namespace mathpool {
namespace {

namespace fs = std::filesystem;

// Knows the file being read, so every error names file, line and key.
class Reader {
 public:
  explicit Reader(fs::path file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const YAML::Node& at, const std::string& key, const std::string& why) const {
    const int line = at.Mark().line >= 0 ? at.Mark().line + 1 : 0;
    throw ConfigError(fmt::format("{}:{}: key '{}': {}", file_.string(), line, key, why));
  }

  // Checks that `map` is a map with only `known` keys.
  void expect_map(const YAML::Node& map, const std::string& key,
                  std::initializer_list<std::string_view> known) const {
    if (!map.IsMap()) fail(map, key, "must be a map");
    std::set<std::string> seen;
    for (const auto& item : map) {
      const std::string name = key_name(item.first, key);
      if (!seen.insert(name).second) fail(item.first, path(key, name), "duplicate key");
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        std::string list;
        for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        fail(item.first, path(key, name), fmt::format("unknown key (expected one of: {})", list));
      }
    }
  }

  // A map key as text; a key that is not a plain value is an error.
  std::string key_name(const YAML::Node& key_node, const std::string& parent) const {
    if (!key_node.IsScalar()) fail(key_node, parent, "map keys must be plain values");
    return key_node.Scalar();
  }

  std::string scalar(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) fail(node, key, "must be a single value");
    return node.Scalar();
  }

  // A decimal integer in [min, INT32_MAX]; anything else names the key.
  int integer(const YAML::Node& node, const std::string& key, int min) const {
    const std::string text = scalar(node, key);
    if (!detail::scan::is_integer(text))
      fail(node, key, fmt::format("{} is not an integer", detail::quote_short(text)));
    const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
    std::int64_t v = 0;
    if (std::from_chars(begin, text.data() + text.size(), v).ec != std::errc())
      fail(node, key, fmt::format("{} is out of range", detail::quote_short(text)));
    if (v < min) fail(node, key, fmt::format("must be at least {}, got {}", min, v));
    if (v > INT32_MAX) fail(node, key, fmt::format("must be at most {}, got {}", INT32_MAX, v));
    return static_cast<int>(v);
  }

  // The node as a Value, spending this config's node budget (see YamlBudget).
  Value value(const YAML::Node& node, const std::string& key) const {
    try {
      return detail::yaml_to_value(node, budget_);
    } catch (const detail::YamlValueError& e) {
      const int line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
      throw ConfigError(fmt::format("{}:{}: key '{}{}': {}", file_.string(), line, key, e.path, e.what()));
    }
  }

  fs::path relative(const std::string& path) const {
    fs::path p(path);
    return p.is_absolute() ? p : file_.parent_path() / p;
  }

  // A plugin_path entry, resolved against the config's folder. A config read
  // from a file has its entries checked here, where the line is known, rather
  // than later by a worker that can only name the path.
  fs::path plugin_path(const YAML::Node& node, const std::string& key) const {
    const fs::path p = relative(scalar(node, key));
    std::error_code ec;
    if (fs::is_regular_file(file_, ec) && !fs::exists(p, ec))
      fail(node, key, fmt::format("no such file or directory: {}", p.string()));
    return p;
  }

  static std::string path(const std::string& parent, const std::string& key) {
    return parent.empty() ? key : parent + "." + key;
  }

 private:
  fs::path file_;
  mutable detail::YamlBudget budget_;  // one for the whole config
};

// The deepest flow nesting ([ and {) allowed; yaml-cpp parses nesting by
// recursion, so deep text is refused before it gets there.
constexpr int kMaxFlowDepth = detail::YamlBudget::kMaxDepth;

// Whether a quote after `c` opens a quoted scalar (rather than being part of
// a plain one, as in "don't").
bool starts_token(char c) {
  return std::isspace(static_cast<unsigned char>(c)) || c == '[' || c == '{' || c == ',' ||
         c == ':' || c == '-' || c == '?';
}

// The 1-based line where flow nesting first goes deeper than kMaxFlowDepth,
// or 0. Skips quoted text and comments; a bracket inside a plain scalar may
// be over-counted, which only matters past the limit.
int too_deep_line(std::string_view text) {
  int depth = 0, line = 1;
  char quote = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') ++line;
    if (quote) {
      if (quote == '"' && c == '\\') ++i;  // an escape; a newline here is rare enough to miss
      else if (c == quote) quote = 0;
    } else if (c == '#' && (i == 0 || std::isspace(static_cast<unsigned char>(text[i - 1])))) {
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
    } else if ((c == '"' || c == '\'') && (i == 0 || starts_token(text[i - 1]))) {
      quote = c;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxFlowDepth) return line;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return 0;
}

// Parses the text, turning every yaml-cpp failure into a located ConfigError.
YAML::Node load_yaml(const std::string& yaml, const fs::path& file) {
  if (const int line = too_deep_line(yaml))
    throw ConfigError(fmt::format("{}:{}: invalid YAML: nested deeper than {} levels", file.string(),
                                  line, kMaxFlowDepth));
  try {
    return YAML::Load(yaml);
  } catch (const YAML::DeepRecursion& e) {
    throw ConfigError(fmt::format("{}:{}: invalid YAML: nested too deeply ({} levels)", file.string(),
                                  e.mark.line + 1, e.depth()));
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}: invalid YAML: {}", file.string(), e.mark.line + 1, e.msg));
  }
}

void read_pool(const Reader& r, const YAML::Node& pool, PoolOptions& options) {
  r.expect_map(pool, "pool",
               {"workers", "start", "task_timeout", "memory_limit", "max_tasks_per_worker", "retries",
                "chunk_size", "setup_timeout", "isolation"});
  if (auto n = pool["workers"]) {
    options.workers = r.scalar(n, "pool.workers") == "auto"
                          ? 0
                          : r.integer(n, "pool.workers", 1);
  }
  if (auto n = pool["start"]) {
    const std::string start = r.scalar(n, "pool.start");
    if (start == "spawn") options.start = StartMode::spawn;
    else if (start == "zygote") options.start = StartMode::zygote;
    else r.fail(n, "pool.start", fmt::format("'{}' is not one of: zygote, spawn", start));
  }
  if (auto n = pool["isolation"]) {
    const std::string isolation = r.scalar(n, "pool.isolation");
    if (isolation == "worker") options.isolation = Isolation::worker;
    else if (isolation == "task") options.isolation = Isolation::task;
    else r.fail(n, "pool.isolation", fmt::format("'{}' is not one of: worker, task", isolation));
  }
  if (auto n = pool["task_timeout"]) {
    try {
      options.task_timeout = parse_duration(r.scalar(n, "pool.task_timeout"));
    } catch (const std::invalid_argument& e) {
      r.fail(n, "pool.task_timeout", e.what());
    }
  }
  if (auto n = pool["setup_timeout"]) {
    try {
      auto limit = parse_duration(r.scalar(n, "pool.setup_timeout"));
      if (!limit) r.fail(n, "pool.setup_timeout", "must be a duration; a setup may not hang forever");
      options.setup_timeout = *limit;
    } catch (const std::invalid_argument& e) {
      r.fail(n, "pool.setup_timeout", e.what());
    }
  }
  if (auto n = pool["memory_limit"]) {
    try {
      options.memory_limit = parse_memory(r.scalar(n, "pool.memory_limit"));
    } catch (const std::invalid_argument& e) {
      r.fail(n, "pool.memory_limit", e.what());
    }
  }
  if (auto n = pool["max_tasks_per_worker"])
    options.max_tasks_per_worker = r.integer(n, "pool.max_tasks_per_worker", 0);
  if (auto n = pool["retries"]) options.retries = r.integer(n, "pool.retries", 0);
  if (auto n = pool["chunk_size"])
    options.chunk_size = r.scalar(n, "pool.chunk_size") == "auto" ? 0 : r.integer(n, "pool.chunk_size", 1);
}

// An integer of a range: START, STOP or STEP.
std::int64_t range_integer(const Reader& r, const YAML::Node& node, const std::string& key) {
  const Value v = r.value(node, key);
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(INT64_MAX)))
    r.fail(node, key, fmt::format("'{}' is not a 64-bit integer", node.IsScalar() ? node.Scalar() : v.dump()));
  return v.get<std::int64_t>();
}

// {range: [START, STOP]} or {range: [START, STOP, STEP]}, as Python's range.
detail::IntegerRange read_range(const Reader& r, const YAML::Node& node, const std::string& key) {
  const YAML::Node bounds = node["range"];
  if (!bounds.IsSequence() || bounds.size() < 2 || bounds.size() > 3)
    r.fail(bounds, key + ".range", "expected [START, STOP] or [START, STOP, STEP]");
  const std::int64_t start = range_integer(r, bounds[0], key + ".range[0]");
  const std::int64_t stop = range_integer(r, bounds[1], key + ".range[1]");
  const std::int64_t step = bounds.size() == 3 ? range_integer(r, bounds[2], key + ".range[2]") : 1;
  if (step == 0) r.fail(bounds[2], key + ".range[2]", "the step must not be 0");
  const detail::IntegerRange range = detail::make_range(start, stop, step);
  if (range.count == 0)
    r.fail(bounds, key + ".range", fmt::format("range [{}, {}, {}] is empty; a sweep needs at least one value",
                                               start, stop, step));
  return range;
}

std::vector<Value> read_list(const Reader& r, const YAML::Node& node, const std::string& key) {
  Value list = r.value(node, key);
  if (list.empty()) r.fail(node, key, "a sweep needs at least one value");
  return {list.begin(), list.end()};
}

SweepAxis read_product(const Reader& r, const YAML::Node& node, const std::string& name, const std::string& key) {
  const YAML::Node positions = node["product"];
  if (!positions.IsSequence() || positions.size() == 0)
    r.fail(positions, key + ".product", "expected a non-empty list of lists or {range: ...}");
  std::vector<detail::ProductFactor> factors;
  for (std::size_t i = 0; i < positions.size(); ++i) {
    const std::string at = fmt::format("{}.product[{}]", key, i);
    detail::ProductFactor factor;
    if (positions[i].IsSequence()) {
      for (const Value& v : read_list(r, positions[i], at)) factor.list.add(v);
    } else if (positions[i].IsMap()) {
      r.expect_map(positions[i], at, {"range"});
      if (!positions[i]["range"]) r.fail(positions[i], at, "expected a list or {range: ...}");
      factor.range = read_range(r, positions[i], at);
    } else {
      r.fail(positions[i], at, "expected a list or {range: ...}");
    }
    factors.push_back(std::move(factor));
  }
  return detail::product_axis(name, std::move(factors));
}

detail::HeaderCsv read_csv_with_header(const Reader& r, const YAML::Node& file, const std::string& key) {
  const fs::path csv = r.relative(r.scalar(file, key));
  detail::HeaderCsv table;
  try {
    table = detail::read_header_csv(csv);
  } catch (const std::runtime_error& e) {
    r.fail(file, key, e.what());
  }
  if (table.rows.empty()) r.fail(file, key, fmt::format("{} has no data rows", csv.string()));
  return table;
}

// One `sweep` key: a list, {range}, {csv}, {csv, column} or {product}.
SweepAxis read_sweep_axis(const Reader& r, const YAML::Node& node, const std::string& name, const std::string& key) {
  if (node.IsSequence()) return detail::list_axis(name, read_list(r, node, key));
  if (!node.IsMap()) r.fail(node, key, "a sweep takes a list, {range: ...}, {csv: FILE}, or {product: ...}");
  r.expect_map(node, key, {"csv", "column", "range", "product"});
  if (node["range"] && node.size() == 1) return detail::range_axis(name, read_range(r, node, key));
  if (node["product"] && node.size() == 1) return read_product(r, node, name, key);
  if (!node["csv"] || node["range"] || node["product"])
    r.fail(node, key, "expected one of {range: ...}, {csv: FILE}, {csv: FILE, column: NAME}, {product: ...}");
  if (const YAML::Node column = node["column"]) {
    const std::string wanted = r.scalar(column, key + ".column");
    const detail::HeaderCsv table = read_csv_with_header(r, node["csv"], key + ".csv");
    const auto at = std::find(table.header.begin(), table.header.end(), wanted);
    if (at == table.header.end())
      r.fail(column, key + ".column", fmt::format("no column '{}' in the CSV header", wanted));
    std::vector<Value> values;
    values.reserve(table.rows.size());
    for (const auto& row : table.rows) values.push_back(row[std::size_t(at - table.header.begin())]);
    return detail::list_axis(name, values);
  }
  const fs::path csv = r.relative(r.scalar(node["csv"], key + ".csv"));
  std::vector<Value> rows;
  try {
    rows = detail::read_integer_csv(csv);
  } catch (const std::runtime_error& e) {
    r.fail(node["csv"], key + ".csv", e.what());
  }
  if (rows.empty()) r.fail(node["csv"], key + ".csv", fmt::format("{} has no data rows", csv.string()));
  return detail::list_axis(name, rows);
}

AnalysisEntry read_entry(const Reader& r, const YAML::Node& node, std::size_t index) {
  const std::string at = fmt::format("analyses[{}]", index);
  r.expect_map(node, at, {"name", "analysis", "params", "repeat", "sweep", "rows"});
  AnalysisEntry entry;
  entry.line = node.Mark().line + 1;
  if (!node["name"]) r.fail(node, at + ".name", "is required");
  entry.name = r.scalar(node["name"], at + ".name");
  if (entry.name.empty()) r.fail(node["name"], at + ".name", "must not be empty");
  if (!node["analysis"]) r.fail(node, at + ".analysis", "is required");
  entry.analysis = r.scalar(node["analysis"], at + ".analysis");
  if (auto params = node["params"]) {
    if (!params.IsMap() && !params.IsNull()) r.fail(params, at + ".params", "must be a map");
    if (params.IsMap()) entry.params = r.value(params, at + ".params");
  }
  if (auto repeat = node["repeat"]) entry.repeat = r.integer(repeat, at + ".repeat", 1);
  std::set<std::string> keys;  // every parameter is set in one place only
  for (const auto& item : entry.params.items()) keys.insert(item.key());
  if (auto rows = node["rows"]) {
    r.expect_map(rows, at + ".rows", {"csv"});
    if (!rows["csv"]) r.fail(rows, at + ".rows", "expected {csv: FILE}");
    detail::HeaderCsv table = read_csv_with_header(r, rows["csv"], at + ".rows.csv");
    for (const std::string& column : table.header)
      if (!keys.insert(column).second)
        r.fail(rows["csv"], at + ".rows.csv", fmt::format("column '{}' is also set in params; set it in one place", column));
    entry.sweep.push_back(detail::rows_axis(std::move(table.header), table.rows));
  }
  if (auto sweep = node["sweep"]) {
    if (!sweep.IsMap()) r.fail(sweep, at + ".sweep", "must be a map of parameter: values");
    std::set<std::string> seen;
    for (const auto& axis : sweep) {
      const std::string key = r.key_name(axis.first, at + ".sweep");
      if (!seen.insert(key).second) r.fail(axis.first, at + ".sweep." + key, "duplicate key");
      if (!keys.insert(key).second)
        r.fail(axis.first, at + ".sweep." + key, "is also set in params or rows; set it in one place");
      entry.sweep.push_back(read_sweep_axis(r, axis.second, key, at + ".sweep." + key));
    }
  }
  if (entry.task_count() == UINT64_MAX)
    r.fail(node, at, "expands to more tasks than can be counted (2^64)");
  return entry;
}

// `mpi:` (docs/mpi.md): node_timeout, a duration of at least 2s (heartbeats go every second).
void read_mpi(const Reader& r, const YAML::Node& mpi, RunConfig& config) {
  r.expect_map(mpi, "mpi", {"node_timeout"});
  if (auto n = mpi["node_timeout"]) {
    std::optional<std::chrono::milliseconds> limit;
    try {
      limit = parse_duration(r.scalar(n, "mpi.node_timeout"));
    } catch (const std::invalid_argument& e) {
      r.fail(n, "mpi.node_timeout", e.what());
    }
    if (!limit) r.fail(n, "mpi.node_timeout", "must be a duration; a silent rank may not hang the job forever");
    if (*limit < std::chrono::seconds(2))
      r.fail(n, "mpi.node_timeout", "must be at least 2s (ranks send a heartbeat every second)");
    config.mpi_node_timeout = *limit;
  }
}

}  // namespace

RunConfig parse_config(const std::string& yaml, const fs::path& file) {
  Reader r(file);
  const YAML::Node root = load_yaml(yaml, file);
  if (root.IsNull()) throw ConfigError(fmt::format("{}:1: key 'analyses': is required", file.string()));
  // `anchors` holds YAML anchors for use below (e.g. `bit: &bit [0, 1]`); it is not read.
  r.expect_map(root, "", {"pool", "plugin_path", "output", "analyses", "anchors", "mpi"});

  RunConfig config;
  config.file = file;
  if (auto pool = root["pool"]) read_pool(r, pool, config.pool);
  if (auto mpi = root["mpi"]) read_mpi(r, mpi, config);
  if (auto paths = root["plugin_path"]) {
    if (paths.IsScalar()) {
      config.pool.plugin_paths.push_back(r.plugin_path(paths, "plugin_path"));
    } else if (paths.IsSequence()) {
      for (const auto& p : paths) config.pool.plugin_paths.push_back(r.plugin_path(p, "plugin_path"));
    } else {
      r.fail(paths, "plugin_path", "must be a path or a list of paths");
    }
  }
  if (auto output = root["output"]) {
    const std::string out = r.scalar(output, "output");
    if (!out.empty() && out != "-") config.output = r.relative(out);
  }
  const YAML::Node analyses = root["analyses"];
  if (!analyses) r.fail(root, "analyses", "is required");
  if (!analyses.IsSequence() || analyses.size() == 0)
    r.fail(analyses, "analyses", "must be a non-empty list");
  std::set<std::string> names;
  for (std::size_t i = 0; i < analyses.size(); ++i) {
    AnalysisEntry entry = read_entry(r, analyses[i], i);
    if (!names.insert(entry.name).second)
      r.fail(analyses[i]["name"], fmt::format("analyses[{}].name", i),
             fmt::format("'{}' is used by an earlier entry; names must be unique", entry.name));
    config.analyses.push_back(std::move(entry));
  }
  return config;
}

RunConfig load_config(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw ConfigError(fmt::format("{}: cannot read the file", file.string()));
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), file);
}

std::vector<TaskPlan> expand_tasks(const RunConfig& config) {
  std::vector<TaskPlan> plan;
  detail::Bytes params;
  for (const AnalysisEntry& entry : config.analyses) {
    for (std::uint64_t task = 0; task < entry.parameter_sets(); ++task) {
      params.clear();
      entry.encode_params(task, params);
      const Value decoded = detail::msgpack_to_value(params);
      for (int repeat = 0; repeat < entry.repeat; ++repeat)
        plan.push_back({entry.name, entry.analysis, std::size_t(task), repeat, decoded});
    }
  }
  return plan;
}

namespace {

// The number part of an amount (digits, maybe a fraction). Past a double's
// range it is a huge number or (only zeros before the point) a tiny one.
double amount_value(std::string_view number) {
  double v = 0;
  const auto r = std::from_chars(number.data(), number.data() + number.size(), v);
  if (r.ec == std::errc()) return v;
  const std::string_view whole = number.substr(0, number.find('.'));
  return whole.find_first_not_of('0') == std::string_view::npos ? 0.0 : HUGE_VAL;
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  if (text == "none") return std::nullopt;
  detail::scan::Amount amount;
  const bool ok = detail::scan::amount(text, amount) &&
                  (amount.unit.empty() || amount.unit == "ms" || amount.unit == "s" ||
                   amount.unit == "m" || amount.unit == "h");
  if (!ok)
    throw std::invalid_argument(fmt::format(
        "{} is not a duration (none, or a number with ms, s, m or h)", detail::quote_short(text)));
  const std::string_view unit = amount.unit.empty() ? "s" : amount.unit;
  const double scale = unit == "ms" ? 1 : unit == "s" ? 1e3 : unit == "m" ? 6e4 : 3.6e6;
  const double ms = amount_value(amount.number) * scale;
  if (ms < 1) throw std::invalid_argument(fmt::format("{} is shorter than 1ms", detail::quote_short(text)));
  if (ms > 1e12)
    throw std::invalid_argument(fmt::format("{} is longer than 30 years", detail::quote_short(text)));
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

std::int64_t parse_memory(const std::string& text) {
  if (text == "none") return 0;
  detail::scan::Amount amount;
  const bool ok = detail::scan::amount(text, amount) &&
                  (amount.unit.empty() || amount.unit == "B" || amount.unit == "KiB" ||
                   amount.unit == "MiB" || amount.unit == "GiB");
  if (!ok)
    throw std::invalid_argument(fmt::format(
        "{} is not a memory size (none, or bytes with KiB, MiB or GiB)", detail::quote_short(text)));
  const std::string_view unit = amount.unit;
  const double scale = unit == "KiB" ? 1024.0 : unit == "MiB" ? 1048576.0 : unit == "GiB" ? 1073741824.0 : 1.0;
  const double bytes = amount_value(amount.number) * scale;
  if (bytes < 1 << 20) throw std::invalid_argument(fmt::format("{} is below 1MiB", detail::quote_short(text)));
  if (bytes > 1e18)
    throw std::invalid_argument(fmt::format("{} is larger than any machine", detail::quote_short(text)));
  return static_cast<std::int64_t>(bytes);
}

}  // namespace mathpool
