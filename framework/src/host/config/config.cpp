#include "mathpool/config.hpp"

#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include "config_reader.hpp"
#include "config_units.hpp"
#include "pool_options_table.hpp"
#include "record_fields.hpp"

namespace mathpool {
namespace {

namespace fs = std::filesystem;
using detail::Reader;


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

// The `pool:` section, through the one table of PoolOptions' fields.
void read_pool(const Reader& r, const YAML::Node& pool, PoolOptions& options) {
  std::vector<std::string_view> keys;
  for (const auto& field : detail::pool_option_fields())
    if (field.in_config) keys.push_back(field.name);
  r.expect_map(pool, "pool", keys);
  for (const auto& field : detail::pool_option_fields()) {
    if (!field.in_config) continue;
    const std::string key = "pool." + std::string(field.name);
    if (auto n = pool[std::string(field.name)]) {
      try {
        field.set(options, Value(r.scalar(n, key)));
      } catch (const std::invalid_argument& e) {
        r.fail(n, key, e.what());
      }
    }
  }
}

// The `labels:` of an entry: names, each once.
std::vector<std::string> read_labels(const Reader& r, const YAML::Node& node, const std::string& key) {
  if (!node.IsSequence()) r.fail(node, key, "must be a list of names of rows columns or sweep keys");
  std::vector<std::string> names;
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string name = r.scalar(node[i], fmt::format("{}[{}]", key, i));
    if (std::find(names.begin(), names.end(), name) != names.end())
      r.fail(node[i], fmt::format("{}[{}]", key, i), fmt::format("'{}' is listed twice", name));
    names.push_back(name);
  }
  return names;
}

int line_of(const YAML::Node& node) { return node.Mark().line >= 0 ? node.Mark().line + 1 : 0; }

AnalysisEntry read_entry(const Reader& r, const YAML::Node& node, std::size_t index) {
  const std::string at = fmt::format("analyses[{}]", index);
  r.expect_map(node, at, {"name", "analysis", "params", "repeat", "sweep", "rows", "labels"});
  AnalysisEntry entry;
  entry.line = node.Mark().line + 1;
  if (!node["name"]) r.fail(node, at + ".name", "is required");
  entry.name = r.scalar(node["name"], at + ".name");
  if (entry.name.empty()) r.fail(node["name"], at + ".name", "must not be empty");
  if (!node["analysis"]) r.fail(node, at + ".analysis", "is required");
  entry.analysis = r.scalar(node["analysis"], at + ".analysis");
  entry.lines["analysis"] = line_of(node["analysis"]);
  if (auto params = node["params"]) {
    if (!params.IsMap() && !params.IsNull()) r.fail(params, at + ".params", "must be a map");
    if (params.IsMap()) entry.params = r.value(params, at + ".params");
    entry.lines["params"] = line_of(params);
    if (params.IsMap())
      for (const auto& item : params) entry.lines["params." + item.first.Scalar()] = line_of(item.first);
  }
  if (auto repeat = node["repeat"]) entry.repeat = r.integer(repeat, at + ".repeat", 1);
  std::set<std::string> labels;  // not parameters: copied into each record's "labels"
  if (auto list = node["labels"]) {
    entry.labels = read_labels(r, list, at + ".labels");
    labels.insert(entry.labels.begin(), entry.labels.end());
    entry.lines["labels"] = line_of(list);
  }
  std::set<std::string> keys;  // every parameter is set in one place only
  for (const auto& item : entry.params.items()) keys.insert(item.key());
  if (auto rows = node["rows"]) {
    entry.sweep.push_back(detail::read_rows(r, rows, at + ".rows", labels));
    entry.lines["rows"] = line_of(rows["csv"]);
    for (const std::string& column : entry.sweep.back().keys()) {
      if (!keys.insert(column).second)
        r.fail(rows["csv"], at + ".rows.csv", fmt::format("column '{}' is also set in params; set it in one place", column));
      entry.lines["rows." + column] = line_of(rows["csv"]);
    }
  }
  if (auto sweep = node["sweep"]) {
    if (!sweep.IsMap()) r.fail(sweep, at + ".sweep", "must be a map of parameter: values");
    std::set<std::string> seen;
    for (const auto& axis : sweep) {
      const std::string key = r.key_name(axis.first, at + ".sweep");
      if (!seen.insert(key).second) r.fail(axis.first, at + ".sweep." + key, "duplicate key");
      if (!keys.insert(key).second)
        r.fail(axis.first, at + ".sweep." + key, "is also set in params or rows; set it in one place");
      entry.lines["sweep." + key] = line_of(axis.first);
      entry.sweep.push_back(
          detail::read_sweep_axis(r, axis.second, key, at + ".sweep." + key, labels.count(key) > 0, entry.sweep));
    }
  }
  for (std::size_t i = 0; i < entry.labels.size(); ++i) {
    const std::string& name = entry.labels[i];
    const bool found = std::any_of(entry.sweep.begin(), entry.sweep.end(), [&](const SweepAxis& a) {
      return std::find(a.keys().begin(), a.keys().end(), name) != a.keys().end();
    });
    if (!found)
      r.fail(node["labels"][i], fmt::format("{}.labels[{}]", at, i),
             fmt::format("unknown label '{}': a label names a column of `rows` or a key of `sweep`", name));
  }
  if (entry.task_count() == UINT64_MAX)
    r.fail(node, at, "expands to more tasks than can be counted (2^64)");
  if (entry.parameter_sets() == 0) r.fail(node, at, "has no parameter sets");
  return entry;
}

// `mpi:` (docs/mpi.md): node_timeout, a duration of at least 2s (heartbeats go every second).
void read_mpi(const Reader& r, const YAML::Node& mpi, RunConfig& config) {
  r.expect_map(mpi, "mpi", {"node_timeout"});
  if (auto n = mpi["node_timeout"]) {
    std::optional<std::chrono::milliseconds> limit;
    try {
      limit = detail::duration_from_text(r.scalar(n, "mpi.node_timeout"));
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
  r.expect_map(root, "", {"pool", "plugin_path", "output", "output_fields", "analyses", "anchors", "mpi"});

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
  if (auto fields = root["output_fields"]) {
    if (!fields.IsSequence()) r.fail(fields, "output_fields", "must be a list of record fields");
    config.output_fields.emplace();
    for (const auto& field : fields) config.output_fields->push_back(r.scalar(field, "output_fields"));
    try {
      detail::record_fields(*config.output_fields);
    } catch (const std::invalid_argument& e) {
      r.fail(fields, "output_fields", e.what());
    }
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

namespace detail {

std::optional<std::chrono::milliseconds> duration_from_text(const std::string& text) {
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

std::int64_t memory_from_text(const std::string& text) {
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

}  // namespace detail

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  try {
    return detail::duration_from_text(text);
  } catch (const std::invalid_argument& e) {
    throw Error(ErrorKind::invalid_config, e.what());
  }
}

std::int64_t parse_memory(const std::string& text) {
  try {
    return detail::memory_from_text(text);
  } catch (const std::invalid_argument& e) {
    throw Error(ErrorKind::invalid_config, e.what());
  }
}

}  // namespace mathpool
