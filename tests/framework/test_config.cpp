// Run configurations (YAML schema, errors with file/line/key, sweeps, CSV,
// scalar typing), result record formatting and resume reading.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "mathpool/config.hpp"
#include "mathpool/run.hpp"
#include "host/run/run_steps.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using mathpool::ConfigError;
using mathpool::parse_config;
using mathpool::RunConfig;
using mathpool::Value;
using mathpool::test::read_text;
using namespace std::chrono_literals;

namespace {

// The config file name used in messages; parse_config never opens it.
const fs::path kFile = "/configs/run.yaml";

// The one-entry analyses list most tests append.
const std::string kAnalyses =
    "analyses:\n"
    "  - name: a\n"
    "    analysis: example.echo\n";

// The message of the ConfigError that parsing `yaml` throws ("" and a failure if none).
std::string config_error(const std::string& yaml, const fs::path& file = kFile) {
  try {
    parse_config(yaml, file);
  } catch (const ConfigError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a ConfigError: " << e.what() << "\nfor:\n" << yaml;
    return "";
  }
  ADD_FAILURE() << "no ConfigError for:\n" << yaml;
  return "";
}

// Checks "FILE:LINE: key 'KEY'" at the start of a config error.
void expect_error_at(const std::string& message, int line, const std::string& key,
                     const fs::path& file = kFile) {
  const std::string prefix = file.string() + ":" + std::to_string(line) + ": key '" + key + "'";
  EXPECT_EQ(message.rfind(prefix, 0), 0u) << "expected prefix: " << prefix << "\nmessage: " << message;
}


}  // namespace

// ---------------------------------------------------------------- defaults and options

TEST(ConfigDefaults, EveryOptionHasADefault) {
  const RunConfig config = parse_config(kAnalyses, kFile);
  EXPECT_EQ(config.file, kFile);
  EXPECT_EQ(config.pool.workers, 0);  // auto
  EXPECT_EQ(config.pool.start, mathpool::StartMode::zygote);  // README: `start: zygote` is the default
  EXPECT_FALSE(config.pool.task_timeout.has_value());
  EXPECT_EQ(config.pool.memory_limit, 0);
  EXPECT_EQ(config.pool.max_tasks_per_worker, 0);
  EXPECT_EQ(config.pool.retries, 1);
  EXPECT_TRUE(config.pool.plugin_paths.empty());
  EXPECT_TRUE(config.pool.default_plugin_paths);
  EXPECT_FALSE(config.output.has_value());
  ASSERT_EQ(config.analyses.size(), 1u);
  const auto& entry = config.analyses[0];
  EXPECT_EQ(entry.name, "a");
  EXPECT_EQ(entry.analysis, "example.echo");
  EXPECT_EQ(entry.params, Value::object());
  EXPECT_TRUE(entry.sweep.empty());
  EXPECT_EQ(entry.repeat, 1);
  EXPECT_EQ(entry.line, 2);
}

TEST(ConfigOptions, PoolOptionsParsed) {
  const RunConfig config = parse_config(
      "pool:\n"
      "  workers: 3\n"
      "  start: zygote\n"
      "  task_timeout: 250ms\n"
      "  memory_limit: 512MiB\n"
      "  max_tasks_per_worker: 100\n"
      "  retries: 0\n" +
          kAnalyses,
      kFile);
  EXPECT_EQ(config.pool.workers, 3);
  EXPECT_EQ(config.pool.start, mathpool::StartMode::zygote);
  ASSERT_TRUE(config.pool.task_timeout.has_value());
  EXPECT_EQ(*config.pool.task_timeout, 250ms);
  EXPECT_EQ(config.pool.memory_limit, 512LL << 20);
  EXPECT_EQ(config.pool.max_tasks_per_worker, 100);
  EXPECT_EQ(config.pool.retries, 0);
}

TEST(ConfigOptions, WorkersAutoAndSpawn) {
  const RunConfig config =
      parse_config("pool: {workers: auto, start: spawn, task_timeout: none, memory_limit: none}\n" + kAnalyses,
                   kFile);
  EXPECT_EQ(config.pool.workers, 0);
  EXPECT_EQ(config.pool.start, mathpool::StartMode::spawn);
  EXPECT_FALSE(config.pool.task_timeout.has_value());
  EXPECT_EQ(config.pool.memory_limit, 0);
}

TEST(ConfigOptions, TaskTimeoutUnits) {
  const std::vector<std::pair<std::string, std::chrono::milliseconds>> cases = {
      {"1500ms", 1500ms}, {"30s", 30s}, {"2m", 2min}, {"1h", 1h}, {"45", 45s}, {"0.5", 500ms}};
  for (const auto& [text, expected] : cases) {
    const RunConfig config = parse_config("pool:\n  task_timeout: " + text + "\n" + kAnalyses, kFile);
    ASSERT_TRUE(config.pool.task_timeout.has_value()) << text;
    EXPECT_EQ(*config.pool.task_timeout, expected) << text;
  }
}

TEST(ConfigOptions, MemoryLimitUnits) {
  const std::vector<std::pair<std::string, std::int64_t>> cases = {
      {"2048KiB", 2048LL << 10}, {"64MiB", 64LL << 20}, {"2GiB", 2LL << 30}, {"1.5GiB", 3LL << 29},
      {"1048576", 1048576}};
  for (const auto& [text, expected] : cases) {
    const RunConfig config = parse_config("pool:\n  memory_limit: " + text + "\n" + kAnalyses, kFile);
    EXPECT_EQ(config.pool.memory_limit, expected) << text;
  }
}

TEST(ConfigOptions, PluginPathStringIsRelativeToTheConfigFile) {
  const RunConfig config = parse_config("plugin_path: plugins\n" + kAnalyses, kFile);
  ASSERT_EQ(config.pool.plugin_paths.size(), 1u);
  EXPECT_EQ(config.pool.plugin_paths[0], fs::path("/configs/plugins"));
}

TEST(ConfigOptions, PluginPathListRelativeAndAbsolute) {
  const RunConfig config =
      parse_config("plugin_path: [plugins, ../more/lib.so, /opt/mp/plugins]\n" + kAnalyses, kFile);
  ASSERT_EQ(config.pool.plugin_paths.size(), 3u);
  EXPECT_EQ(config.pool.plugin_paths[0], fs::path("/configs/plugins"));
  EXPECT_EQ(config.pool.plugin_paths[1], fs::path("/configs/../more/lib.so"));
  EXPECT_EQ(config.pool.plugin_paths[2], fs::path("/opt/mp/plugins"));
}

TEST(ConfigOptions, PluginPathOfAConfigInTheWorkingDirectory) {
  const RunConfig config = parse_config("plugin_path: plugins\n" + kAnalyses, "run.yaml");
  ASSERT_EQ(config.pool.plugin_paths.size(), 1u);
  EXPECT_EQ(config.pool.plugin_paths[0], fs::path("plugins"));
}

TEST(ConfigOptions, OutputRelativeDashAbsentAbsolute) {
  EXPECT_EQ(parse_config("output: results.jsonl\n" + kAnalyses, kFile).output,
            fs::path("/configs/results.jsonl"));
  EXPECT_EQ(parse_config("output: out/r.jsonl\n" + kAnalyses, kFile).output,
            fs::path("/configs/out/r.jsonl"));
  EXPECT_EQ(parse_config("output: /data/r.jsonl\n" + kAnalyses, kFile).output, fs::path("/data/r.jsonl"));
  EXPECT_FALSE(parse_config("output: \"-\"\n" + kAnalyses, kFile).output.has_value());
  EXPECT_FALSE(parse_config(kAnalyses, kFile).output.has_value());
}

TEST(ConfigOptions, EntryFields) {
  const RunConfig config = parse_config(
      "analyses:\n"
      "  - name: first\n"
      "    analysis: example.sum\n"
      "    params: {values: [1, 2], offset: 5}\n"
      "    repeat: 3\n"
      "  - name: second\n"
      "    analysis: example.echo\n"
      "    params:\n",
      kFile);
  ASSERT_EQ(config.analyses.size(), 2u);
  EXPECT_EQ(config.analyses[0].name, "first");
  EXPECT_EQ(config.analyses[0].analysis, "example.sum");
  EXPECT_EQ(config.analyses[0].params, (Value{{"values", {1, 2}}, {"offset", 5}}));
  EXPECT_EQ(config.analyses[0].repeat, 3);
  EXPECT_EQ(config.analyses[0].line, 2);
  EXPECT_EQ(config.analyses[1].name, "second");
  EXPECT_EQ(config.analyses[1].params, Value::object());  // `params:` with nothing is an empty map
  EXPECT_EQ(config.analyses[1].line, 6);
}

TEST(ConfigLoad, LoadConfigReadsTheFileAndResolvesAgainstItsFolder) {
  mathpool::test::TempDir dir;
  fs::create_directories(dir.path() / "sub" / "p");  // a config file's plugin_path must exist
  const fs::path file = dir.write("sub/run.yaml", "output: r.jsonl\nplugin_path: p\n" + kAnalyses);
  const RunConfig config = mathpool::load_config(file);
  EXPECT_EQ(config.file, file);
  EXPECT_EQ(config.output, dir.path() / "sub" / "r.jsonl");
  ASSERT_EQ(config.pool.plugin_paths.size(), 1u);
  EXPECT_EQ(config.pool.plugin_paths[0], dir.path() / "sub" / "p");
}

TEST(ConfigLoad, MissingFileIsAConfigErrorNamingIt) {
  mathpool::test::TempDir dir;
  const fs::path file = dir.path() / "absent.yaml";
  try {
    mathpool::load_config(file);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- duration and memory

TEST(ConfigDuration, ParsesUnitsAndNone) {
  EXPECT_FALSE(mathpool::parse_duration("none").has_value());
  EXPECT_EQ(mathpool::parse_duration("250ms"), 250ms);
  EXPECT_EQ(mathpool::parse_duration("1ms"), 1ms);
  EXPECT_EQ(mathpool::parse_duration("30s"), 30s);
  EXPECT_EQ(mathpool::parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(mathpool::parse_duration("2m"), 2min);
  EXPECT_EQ(mathpool::parse_duration("1h"), 1h);
  EXPECT_EQ(mathpool::parse_duration("12"), 12s);
  EXPECT_EQ(mathpool::parse_duration("0.25"), 250ms);
}

TEST(ConfigDuration, RejectsBadText) {
  for (const std::string bad : {"", "s", "30x", "30 sec", "-1s", "1d", "abc", "0", "0.5ms", "1e3"})
    EXPECT_THROW(mathpool::parse_duration(bad), mathpool::Error) << "'" << bad << "'";
}

// Regression (was a bug in framework/src/host/config.cpp, parse_duration, line ~250): the amount is
// converted with static_cast<int64_t>(double) without a range check; a duration
// beyond ~292 million years is undefined behaviour and in practice comes back as a
// negative number of milliseconds instead of an error.
TEST(ConfigDuration, HugeDurationIsRejectedOrPositive) {
  try {
    const auto d = mathpool::parse_duration("10000000000000000h");
    ASSERT_TRUE(d.has_value());
    EXPECT_GT(d->count(), 0) << "a huge timeout came back as " << d->count() << "ms";
  } catch (const mathpool::Error&) {
    SUCCEED();
  }
}

TEST(ConfigMemory, ParsesUnitsAndNone) {
  EXPECT_EQ(mathpool::parse_memory("none"), 0);
  EXPECT_EQ(mathpool::parse_memory("2GiB"), 2LL << 30);
  EXPECT_EQ(mathpool::parse_memory("512MiB"), 512LL << 20);
  EXPECT_EQ(mathpool::parse_memory("4096KiB"), 4096LL << 10);
  EXPECT_EQ(mathpool::parse_memory("1MiB"), 1LL << 20);
  EXPECT_EQ(mathpool::parse_memory("3000000"), 3000000);
  EXPECT_EQ(mathpool::parse_memory("0.5GiB"), 1LL << 29);
}

TEST(ConfigMemory, RejectsBadTextAndTinyLimits) {
  for (const std::string bad : {"", "lots", "2GB", "2gib", "-1MiB", "2TiB", "MiB", "1048575", "1023KiB"})
    EXPECT_THROW(mathpool::parse_memory(bad), mathpool::Error) << "'" << bad << "'";
}

// ---------------------------------------------------------------- errors: file, line, key

TEST(ConfigErrors, UnknownTopLevelKey) {
  const std::string m = config_error(
      "pool:\n"
      "  workers: 2\n"
      "bogus: 1\n" +
      kAnalyses);
  expect_error_at(m, 3, "bogus");
  EXPECT_NE(m.find("unknown key"), std::string::npos) << m;
}

TEST(ConfigErrors, UnknownPoolKey) {
  const std::string m = config_error(
      "pool:\n"
      "  workers: 2\n"
      "  bogus: 1\n" +
      kAnalyses);
  expect_error_at(m, 3, "pool.bogus");
  EXPECT_NE(m.find("unknown key"), std::string::npos) << m;
}

TEST(ConfigErrors, UnknownEntryKey) {
  const std::string m = config_error(
      "analyses:\n"
      "  - name: a\n"
      "    analysis: example.echo\n"
      "  - name: b\n"
      "    analysis: example.echo\n"
      "    bogus: 1\n");
  expect_error_at(m, 6, "analyses[1].bogus");
}

TEST(ConfigErrors, UnknownKeyInSweepCsvMap) {
  const std::string m = config_error(
      "analyses:\n"
      "  - name: a\n"
      "    analysis: example.echo\n"
      "    sweep:\n"
      "      coefficients: {csv: lfsrs.csv, bogus: 1}\n");
  expect_error_at(m, 5, "analyses[0].sweep.coefficients.bogus");
}

TEST(ConfigErrors, WorkersNotANumber) {
  const std::string m = config_error("pool:\n  workers: \"many\"\n" + kAnalyses);
  expect_error_at(m, 2, "pool.workers");
  EXPECT_NE(m.find("many"), std::string::npos) << m;
  expect_error_at(config_error("pool:\n  workers: 0\n" + kAnalyses), 2, "pool.workers");
  expect_error_at(config_error("pool:\n  workers: [1]\n" + kAnalyses), 2, "pool.workers");
}

TEST(ConfigErrors, BadStart) {
  const std::string m = config_error("pool:\n  start: fork\n" + kAnalyses);
  expect_error_at(m, 2, "pool.start");
  EXPECT_NE(m.find("fork"), std::string::npos) << m;
}

TEST(ConfigErrors, RepeatZero) {
  const std::string m = config_error(
      "analyses:\n"
      "  - name: a\n"
      "    analysis: example.echo\n"
      "  - name: b\n"
      "    analysis: example.echo\n"
      "    repeat: 0\n");
  expect_error_at(m, 6, "analyses[1].repeat");
}

TEST(ConfigErrors, RetriesNegative) {
  expect_error_at(config_error("pool:\n  workers: 1\n  retries: -1\n" + kAnalyses), 3, "pool.retries");
  expect_error_at(config_error("pool:\n  max_tasks_per_worker: -1\n" + kAnalyses), 2,
                  "pool.max_tasks_per_worker");
  expect_error_at(config_error("pool:\n  retries: 1.5\n" + kAnalyses), 2, "pool.retries");
}

// Regression (was a bug in framework/src/host/config.cpp, lines 89/112/113/151): integers are read as
// int64 and then static_cast<int> without a range check, so `repeat: 4294967297`
// silently becomes 1 and `repeat: 4294967296` becomes 0 (an entry with no tasks),
// `workers: 2147483648` becomes negative (read as auto). They must be errors.
TEST(ConfigErrors, IntegersBeyondIntRangeAreErrors) {
  const std::string entry = "analyses:\n  - name: a\n    analysis: example.echo\n";
  expect_error_at(config_error(entry + "    repeat: 4294967297\n"), 4, "analyses[0].repeat");
  expect_error_at(config_error(entry + "    repeat: 4294967296\n"), 4, "analyses[0].repeat");
  expect_error_at(config_error("pool:\n  workers: 2147483648\n" + kAnalyses), 2, "pool.workers");
  expect_error_at(config_error("pool:\n  retries: 4294967296\n" + kAnalyses), 2, "pool.retries");
}

TEST(ConfigErrors, IntegerBeyondInt64IsOutOfRange) {
  const std::string m = config_error("pool:\n  retries: 99999999999999999999\n" + kAnalyses);
  expect_error_at(m, 2, "pool.retries");
}

TEST(ConfigErrors, ParamsNotAMap) {
  const std::string list = config_error(
      "analyses:\n"
      "  - name: a\n"
      "    analysis: example.echo\n"
      "    params: [1, 2]\n");
  expect_error_at(list, 4, "analyses[0].params");
  EXPECT_NE(list.find("map"), std::string::npos) << list;
  expect_error_at(config_error("analyses:\n  - name: a\n    analysis: x\n    params: 5\n"), 4,
                  "analyses[0].params");
}

TEST(ConfigErrors, AnalysesNotAListOrEmptyOrMissing) {
  const std::string map = config_error("pool: {workers: 1}\nanalyses: {name: a, analysis: x}\n");
  expect_error_at(map, 2, "analyses");
  const std::string empty = config_error("pool: {workers: 1}\nanalyses: []\n");
  expect_error_at(empty, 2, "analyses");
  EXPECT_NE(empty.find("non-empty"), std::string::npos) << empty;
  const std::string missing = config_error("pool: {workers: 1}\n");
  EXPECT_EQ(missing.rfind(kFile.string() + ":", 0), 0u) << missing;
  EXPECT_NE(missing.find("key 'analyses'"), std::string::npos) << missing;
  const std::string nothing = config_error("");
  EXPECT_EQ(nothing.rfind(kFile.string() + ":1: key 'analyses'", 0), 0u) << nothing;
}

TEST(ConfigErrors, EntryNotAMap) {
  expect_error_at(config_error("analyses:\n  - just a string\n"), 2, "analyses[0]");
}

TEST(ConfigErrors, BadDuration) {
  const std::string m = config_error("pool:\n  workers: 2\n  task_timeout: 30x\n" + kAnalyses);
  expect_error_at(m, 3, "pool.task_timeout");
  EXPECT_NE(m.find("30x"), std::string::npos) << m;
}

TEST(ConfigErrors, BadMemory) {
  const std::string m = config_error("pool:\n  memory_limit: 2GB\n" + kAnalyses);
  expect_error_at(m, 2, "pool.memory_limit");
  EXPECT_NE(m.find("2GB"), std::string::npos) << m;
}

TEST(ConfigErrors, DuplicateEntryNames) {
  const std::string m = config_error(
      "analyses:\n"
      "  - name: same\n"
      "    analysis: example.echo\n"
      "  - analysis: example.sum\n"
      "    name: same\n");
  expect_error_at(m, 5, "analyses[1].name");
  EXPECT_NE(m.find("'same'"), std::string::npos) << m;
}

TEST(ConfigErrors, MissingNameOrAnalysis) {
  expect_error_at(config_error(
                      "analyses:\n"
                      "  - name: a\n"
                      "    analysis: example.echo\n"
                      "  - analysis: example.echo\n"
                      "    repeat: 2\n"),
                  4, "analyses[1].name");
  expect_error_at(config_error(
                      "analyses:\n"
                      "  - name: a\n"
                      "    params: {}\n"),
                  2, "analyses[0].analysis");
  expect_error_at(config_error("analyses:\n  - name: \"\"\n    analysis: x\n"), 2, "analyses[0].name");
}

TEST(ConfigErrors, SweepKeyAlsoInParams) {
  const std::string m = config_error(
      "analyses:\n"
      "  - name: a\n"
      "    analysis: example.echo\n"
      "    params: {field: 2}\n"
      "    sweep:\n"
      "      n: [1, 2]\n"
      "      field: [2, 3]\n");
  expect_error_at(m, 7, "analyses[0].sweep.field");
}

TEST(ConfigErrors, SweepNotAMapOrEmptyList) {
  expect_error_at(config_error("analyses:\n  - name: a\n    analysis: x\n    sweep: [1, 2]\n"), 4,
                  "analyses[0].sweep");
  expect_error_at(config_error("analyses:\n  - name: a\n    analysis: x\n    sweep:\n      n: []\n"), 5,
                  "analyses[0].sweep.n");
  expect_error_at(config_error("analyses:\n  - name: a\n    analysis: x\n    sweep:\n      n: 3\n"), 5,
                  "analyses[0].sweep.n");
}

TEST(ConfigErrors, CsvFileMissing) {
  mathpool::test::TempDir dir;
  const fs::path file = dir.write("run.yaml",
                                  "analyses:\n"
                                  "  - name: a\n"
                                  "    analysis: example.echo\n"
                                  "    sweep:\n"
                                  "      coefficients: {csv: missing.csv}\n");
  try {
    mathpool::load_config(file);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    expect_error_at(m, 5, "analyses[0].sweep.coefficients.csv", file);
    EXPECT_NE(m.find("missing.csv"), std::string::npos) << m;
  }
}

TEST(ConfigErrors, CsvNonIntegerCellNamesCsvFileAndLine) {
  mathpool::test::TempDir dir;
  dir.write("lfsrs.csv", "1,0,1\n# comment\n\n1,x,0\n");
  const fs::path file = dir.write("run.yaml",
                                  "analyses:\n"
                                  "  - name: a\n"
                                  "    analysis: example.echo\n"
                                  "    params: {field: 2}\n"
                                  "    sweep:\n"
                                  "      coefficients: {csv: lfsrs.csv}\n");
  try {
    mathpool::load_config(file);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    expect_error_at(m, 6, "analyses[0].sweep.coefficients.csv", file);
    EXPECT_NE(m.find((dir.path() / "lfsrs.csv").string() + ":4:"), std::string::npos) << m;
    EXPECT_NE(m.find("'x'"), std::string::npos) << m;
  }
}

TEST(ConfigErrors, CsvEmptyCellAndOverflow) {
  mathpool::test::TempDir dir;
  dir.write("empty_cell.csv", "1,,0\n");
  dir.write("huge.csv", "1\n99999999999999999999\n");
  for (const auto& [csv, line] : {std::pair<std::string, int>{"empty_cell.csv", 1}, {"huge.csv", 2}}) {
    const fs::path file = dir.write("run.yaml", kAnalyses + "    sweep: {c: {csv: " + csv + "}}\n");
    try {
      mathpool::load_config(file);
      ADD_FAILURE() << "no error for " << csv;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(csv + ":" + std::to_string(line) + ":"), std::string::npos)
          << e.what();
    }
  }
}

// Regression (was a bug in framework/src/host/config.cpp, read_sweep_values, lines 126-132): the
// "has no data rows" ConfigError is thrown inside the try block whose
// catch (const std::runtime_error&) catches it again (ConfigError is a
// runtime_error) and wraps it a second time, so the message reads
// "FILE:LINE: key 'K': FILE:LINE: key 'K': ... has no data rows".
TEST(ConfigErrors, CsvWithoutDataRowsIsOneCleanMessage) {
  mathpool::test::TempDir dir;
  dir.write("empty.csv", "# only a comment\n\n");
  const fs::path file = dir.write("run.yaml", kAnalyses + "    sweep:\n      coefficients: {csv: empty.csv}\n");
  try {
    mathpool::load_config(file);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    expect_error_at(m, 5, "analyses[0].sweep.coefficients.csv", file);
    EXPECT_NE(m.find("no data rows"), std::string::npos) << m;
    // The file:line: key prefix must appear once, not twice.
    EXPECT_EQ(m.find("key '"), m.rfind("key '")) << m;
  }
}

TEST(ConfigErrors, InvalidYamlSyntax) {
  const std::string m = config_error(
      "pool:\n"
      "  workers: 2\n"
      "analyses:\n"
      "  - name: a\n"
      "    params: {field: [1, 2}\n");
  EXPECT_EQ(m.rfind(kFile.string() + ":5:", 0), 0u) << m;
  EXPECT_NE(m.find("invalid YAML"), std::string::npos) << m;
}

TEST(ConfigErrors, InvalidYamlSyntaxIllegalMapValue) {
  const std::string m = config_error(
      "pool:\n"
      "  workers: 2\n"
      "  start: spawn: zygote\n"
      "analyses: []\n");
  EXPECT_EQ(m.rfind(kFile.string() + ":3: invalid YAML", 0), 0u) << m;
}

// Regression (was a bug in framework/src/host/config.cpp, Reader::expect_map line 34, read_entry
// line 155, and yaml_value.cpp line 322): map keys are read with
// `as<std::string>()`, which throws YAML::BadConversion for a non-scalar key
// such as `{[1]: 2}`. That exception is not a ConfigError: `mathpool run` prints
// "yaml-cpp: error at line 4, column 13: bad conversion" without the file name
// or the key (and parse_config's ConfigError contract is broken).
TEST(ConfigErrors, NonScalarMapKeyIsAConfigError) {
  const std::string top = config_error("{[1]: 2, analyses: [{name: a, analysis: x}]}\n");
  EXPECT_EQ(top.rfind(kFile.string() + ":1:", 0), 0u) << top;
  const std::string sweep = config_error(kAnalyses + "    sweep: {[1]: [2]}\n");
  EXPECT_EQ(sweep.rfind(kFile.string() + ":4: key 'analyses[0].sweep", 0), 0u) << sweep;
  const std::string params = config_error(kAnalyses + "    params: {[1]: 2}\n");
  EXPECT_EQ(params.rfind(kFile.string() + ":4: key 'analyses[0].params", 0), 0u) << params;
}

// Regression (was a bug in framework/src/host/config.cpp, read_entry lines 152-159, and every map
// read): duplicate keys in a YAML map are not detected (yaml-cpp keeps both).
// `sweep: {x: [1, 2], x: [3]}` silently becomes two axes named x, giving two
// tasks that both have x = 3 while the values 1 and 2 never run. A duplicate
// key must be an error naming file, line and key.
TEST(ConfigErrors, DuplicateKeysAreErrors) {
  const std::string sweep = config_error(kAnalyses + "    sweep: {x: [1, 2], x: [3]}\n");
  EXPECT_EQ(sweep.rfind(kFile.string() + ":4: key 'analyses[0].sweep.x'", 0), 0u) << sweep;
  const std::string pool = config_error("pool:\n  workers: 2\n  workers: 3\n" + kAnalyses);
  EXPECT_EQ(pool.rfind(kFile.string() + ":3: key 'pool.workers'", 0), 0u) << pool;
}

TEST(ConfigErrors, TopLevelNotAMap) {
  const std::string m = config_error("- a\n- b\n");
  EXPECT_EQ(m.rfind(kFile.string() + ":1:", 0), 0u) << m;
}

TEST(ConfigErrors, PluginPathAndOutputWrongType) {
  expect_error_at(config_error("plugin_path: {a: 1}\n" + kAnalyses), 1, "plugin_path");
  expect_error_at(config_error("plugin_path: [a, [b]]\n" + kAnalyses), 1, "plugin_path");
  expect_error_at(config_error("output: [a.jsonl]\n" + kAnalyses), 1, "output");
}

// ---------------------------------------------------------------- scalar typing

TEST(ConfigScalars, YamlCoreSchemaTyping) {
  const RunConfig config = parse_config(
      "analyses:\n"
      "  - name: a\n"
      "    analysis: example.echo\n"
      "    params:\n"
      "      quoted: \"1\"\n"
      "      single: '2'\n"
      "      int: 1\n"
      "      negative: -7\n"
      "      plus: +5\n"
      "      hex: 0x1F\n"
      "      yes: true\n"
      "      no: false\n"
      "      tilde: ~\n"
      "      null_word: null\n"
      "      empty:\n"
      "      float: 1.5\n"
      "      exp: 2e3\n"
      "      word: hello\n"
      "      quoted_true: \"true\"\n"
      "      list: [1, \"2\", x]\n"
      "      nested: {k: [true, ~]}\n",
      kFile);
  const Value& p = config.analyses.at(0).params;
  EXPECT_TRUE(p["quoted"].is_string());
  EXPECT_EQ(p["quoted"], "1");
  EXPECT_TRUE(p["single"].is_string());
  EXPECT_EQ(p["single"], "2");
  EXPECT_TRUE(p["int"].is_number_integer());
  EXPECT_EQ(p["int"].get<std::int64_t>(), 1);
  EXPECT_EQ(p["negative"].get<std::int64_t>(), -7);
  EXPECT_EQ(p["plus"].get<std::int64_t>(), 5);
  EXPECT_EQ(p["hex"].get<std::int64_t>(), 31);
  EXPECT_TRUE(p["yes"].is_boolean());
  EXPECT_EQ(p["yes"], true);
  EXPECT_TRUE(p["no"].is_boolean());
  EXPECT_EQ(p["no"], false);
  EXPECT_TRUE(p["tilde"].is_null());
  EXPECT_TRUE(p["null_word"].is_null());
  EXPECT_TRUE(p["empty"].is_null());
  EXPECT_TRUE(p["float"].is_number_float());
  EXPECT_DOUBLE_EQ(p["float"].get<double>(), 1.5);
  EXPECT_TRUE(p["exp"].is_number_float());
  EXPECT_DOUBLE_EQ(p["exp"].get<double>(), 2000.0);
  EXPECT_EQ(p["word"], "hello");
  EXPECT_TRUE(p["quoted_true"].is_string());
  EXPECT_EQ(p["list"], (Value{1, "2", "x"}));
  EXPECT_TRUE(p["list"][1].is_string());
  EXPECT_EQ(p["nested"], (Value{{"k", {true, nullptr}}}));
  // The params keep the order of the file.
  std::vector<std::string> keys;
  for (const auto& item : p.items()) keys.push_back(item.key());
  EXPECT_EQ(keys.front(), "quoted");
  EXPECT_EQ(keys.back(), "nested");
  EXPECT_EQ(keys.size(), 17u);
}

TEST(ConfigScalars, SixtyFourBitLimits) {
  const RunConfig config = parse_config(
      "analyses:\n"
      "  - name: a\n"
      "    analysis: example.echo\n"
      "    params:\n"
      "      max: 9223372036854775807\n"
      "      min: -9223372036854775808\n"
      "      above: 9223372036854775808\n"
      "      umax: 18446744073709551615\n",
      kFile);
  const Value& p = config.analyses.at(0).params;
  EXPECT_TRUE(p["max"].is_number_integer());
  EXPECT_EQ(p["max"].get<std::int64_t>(), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(p["min"].get<std::int64_t>(), std::numeric_limits<std::int64_t>::min());
  EXPECT_TRUE(p["above"].is_number_unsigned());
  EXPECT_EQ(p["above"].get<std::uint64_t>(), std::uint64_t{1} << 63);
  EXPECT_TRUE(p["umax"].is_number_unsigned());
  EXPECT_EQ(p["umax"].get<std::uint64_t>(), std::numeric_limits<std::uint64_t>::max());
}

TEST(ConfigScalars, IntegerBeyond64BitsIsAnError) {
  const std::string m = config_error(
      "analyses:\n"
      "  - name: a\n"
      "    analysis: example.echo\n"
      "    params: {field: 2, big: 18446744073709551616}\n");
  expect_error_at(m, 4, "analyses[0].params.big");
  EXPECT_NE(m.find("18446744073709551616"), std::string::npos) << m;
  const std::string negative = config_error(
      "analyses:\n"
      "  - name: a\n"
      "    analysis: example.echo\n"
      "    sweep: {n: [1, -9223372036854775809]}\n");
  expect_error_at(negative, 4, "analyses[0].sweep.n[1]");
}

// Regression (was a bug in framework/src/host/config.cpp, read_entry line 149 / Reader::value): the
// params map is converted as a whole, so an integer too large for 64 bits deep in
// a block-style params map is reported at the line where `params` starts and under
// the key 'analyses[0].params', not at its own line and key
// ('analyses[0].params.big'). bad values name the file, the line and the key.
TEST(ConfigScalars, IntegerBeyond64BitsNamesItsOwnLineAndKey) {
  const std::string m = config_error(
      "analyses:\n"
      "  - name: a\n"
      "    analysis: example.echo\n"
      "    params:\n"
      "      field: 2\n"
      "      big: 18446744073709551616\n");
  expect_error_at(m, 6, "analyses[0].params.big");
}

// ---------------------------------------------------------------- sweeps and repeats

TEST(ConfigSweep, CartesianProductLastKeyFastest) {
  const RunConfig config = parse_config(
      "analyses:\n"
      "  - name: s\n"
      "    analysis: example.echo\n"
      "    params: {base: 7}\n"
      "    sweep:\n"
      "      a: [1, 2]\n"
      "      b: [x, y, z]\n",
      kFile);
  ASSERT_EQ(config.analyses[0].sweep.size(), 2u);
  EXPECT_EQ(config.analyses[0].sweep[0].keys(), std::vector<std::string>{"a"});
  EXPECT_EQ(config.analyses[0].sweep[1].keys(), std::vector<std::string>{"b"});
  const auto plan = mathpool::expand_tasks(config);
  ASSERT_EQ(plan.size(), 6u);
  const std::vector<std::pair<int, std::string>> expected = {{1, "x"}, {1, "y"}, {1, "z"},
                                                             {2, "x"}, {2, "y"}, {2, "z"}};
  for (std::size_t i = 0; i < plan.size(); ++i) {
    EXPECT_EQ(plan[i].run, "s");
    EXPECT_EQ(plan[i].analysis, "example.echo");
    EXPECT_EQ(plan[i].task, i);
    EXPECT_EQ(plan[i].repeat, 0);
    EXPECT_EQ(plan[i].params["a"], expected[i].first) << i;
    EXPECT_EQ(plan[i].params["b"], expected[i].second) << i;
    // Base params first, then the sweep keys in their order.
    EXPECT_EQ(plan[i].params.dump(), Value({{"base", 7}, {"a", expected[i].first}, {"b", expected[i].second}}).dump());
  }
}

TEST(ConfigSweep, ThreeAxesAndStructuredValues) {
  const RunConfig config = parse_config(
      "analyses:\n"
      "  - name: s\n"
      "    analysis: example.echo\n"
      "    sweep:\n"
      "      p: [[1, 0], [1, 1]]\n"
      "      q: [a]\n"
      "      r: [10, 20, 30]\n",
      kFile);
  const auto plan = mathpool::expand_tasks(config);
  ASSERT_EQ(plan.size(), 6u);
  EXPECT_EQ(plan[0].params, (Value{{"p", {1, 0}}, {"q", "a"}, {"r", 10}}));
  EXPECT_EQ(plan[2].params, (Value{{"p", {1, 0}}, {"q", "a"}, {"r", 30}}));
  EXPECT_EQ(plan[3].params, (Value{{"p", {1, 1}}, {"q", "a"}, {"r", 10}}));
  EXPECT_EQ(plan[5].params, (Value{{"p", {1, 1}}, {"q", "a"}, {"r", 30}}));
}

TEST(ConfigSweep, RepeatsShareTheTaskIndex) {
  const RunConfig config = parse_config(
      "analyses:\n"
      "  - name: one\n"
      "    analysis: example.echo\n"
      "    params: {x: 1}\n"
      "    repeat: 3\n"
      "  - name: two\n"
      "    analysis: example.sum\n"
      "    sweep: {values: [[1], [2, 3]]}\n"
      "    repeat: 2\n",
      kFile);
  const auto plan = mathpool::expand_tasks(config);
  ASSERT_EQ(plan.size(), 7u);
  const std::vector<std::tuple<std::string, std::size_t, int>> expected = {
      {"one", 0, 0}, {"one", 0, 1}, {"one", 0, 2}, {"two", 0, 0}, {"two", 0, 1}, {"two", 1, 0}, {"two", 1, 1}};
  for (std::size_t i = 0; i < plan.size(); ++i) {
    EXPECT_EQ(std::make_tuple(plan[i].run, plan[i].task, plan[i].repeat), expected[i]) << i;
  }
  EXPECT_EQ(plan[0].params, (Value{{"x", 1}}));
  EXPECT_EQ(plan[2].params, (Value{{"x", 1}}));
  EXPECT_EQ(plan[0].analysis, "example.echo");
  EXPECT_EQ(plan[3].analysis, "example.sum");
  EXPECT_EQ(plan[4].params, (Value{{"values", {1}}}));
  EXPECT_EQ(plan[5].params, (Value{{"values", {2, 3}}}));
  EXPECT_EQ(plan[6].params, (Value{{"values", {2, 3}}}));
}

TEST(ConfigSweep, NoSweepIsOneTask) {
  const auto plan = mathpool::expand_tasks(parse_config(kAnalyses, kFile));
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].task, 0u);
  EXPECT_EQ(plan[0].repeat, 0);
  EXPECT_EQ(plan[0].params, Value::object());
}

TEST(ConfigSweep, CsvRowsInLfsrSeqFormat) {
  mathpool::test::TempDir dir;
  fs::create_directories(dir.path() / "cfg" / "data");
  dir.write("cfg/data/lfsrs.csv",
            "# lfsr-seq: one register per row\n"
            "1,0,1,1\n"
            "\n"
            "  # indented comment\n"
            "0, 1, 1   # trailing comment\n"
            "\t-1 ,2\r\n"
            "5\n");
  const fs::path file = dir.write("cfg/run.yaml",
                                  "analyses:\n"
                                  "  - name: a\n"
                                  "    analysis: example.echo\n"
                                  "    params: {field: 2}\n"
                                  "    sweep:\n"
                                  "      coefficients: {csv: data/lfsrs.csv}\n"
                                  "      mode: [u, v]\n");
  const RunConfig config = mathpool::load_config(file);
  ASSERT_EQ(config.analyses[0].sweep.size(), 2u);
  const auto& rows = config.analyses[0].sweep[0];
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows.value(0), (Value{1, 0, 1, 1}));
  EXPECT_EQ(rows.value(1), (Value{0, 1, 1}));
  EXPECT_EQ(rows.value(2), (Value{-1, 2}));
  EXPECT_EQ(rows.value(3), (Value{5}));
  const auto plan = mathpool::expand_tasks(config);
  ASSERT_EQ(plan.size(), 8u);
  EXPECT_EQ(plan[0].params, (Value{{"field", 2}, {"coefficients", {1, 0, 1, 1}}, {"mode", "u"}}));
  EXPECT_EQ(plan[1].params, (Value{{"field", 2}, {"coefficients", {1, 0, 1, 1}}, {"mode", "v"}}));
  EXPECT_EQ(plan[7].params, (Value{{"field", 2}, {"coefficients", {5}}, {"mode", "v"}}));
  EXPECT_EQ(plan[7].task, 7u);
}

TEST(ConfigSweep, CsvAbsolutePath) {
  mathpool::test::TempDir dir;
  const fs::path csv = dir.write("abs.csv", "1,2\n3,4\n");
  const RunConfig config =
      parse_config(kAnalyses + "    sweep: {c: {csv: \"" + csv.string() + "\"}}\n", "/nowhere/run.yaml");
  ASSERT_EQ(config.analyses[0].sweep.at(0).size(), 2u);
  EXPECT_EQ(config.analyses[0].sweep[0].value(1), (Value{3, 4}));
}

// ---------------------------------------------------------------- records

namespace {

mathpool::TaskPlan sample_task() {
  mathpool::TaskPlan task;
  task.run = "demo";
  task.analysis = "example.sum";
  task.task = 4;
  task.repeat = 2;
  task.params = Value{{"values", {1, 2}}, {"offset", 3}};
  return task;
}

std::vector<std::string> keys_of(const Value& v) {
  std::vector<std::string> keys;
  for (const auto& item : v.items()) keys.push_back(item.key());
  return keys;
}

}  // namespace

TEST(RecordFormat, OkRecordKeyOrderAndValues) {
  mathpool::TaskResult result;
  result.result = Value{{"sum", 6}, {"count", 2}};
  result.worker = 4242;
  result.seconds = 0.25;
  const std::string line = mathpool::format_record(mathpool::make_record(sample_task(), result));
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  const Value parsed = Value::parse(line);
  EXPECT_EQ(keys_of(parsed), (std::vector<std::string>{"run", "analysis", "task", "repeat", "params", "status",
                                                       "result", "worker", "seconds"}));
  EXPECT_EQ(parsed["run"], "demo");
  EXPECT_EQ(parsed["analysis"], "example.sum");
  EXPECT_EQ(parsed["task"], 4);
  EXPECT_EQ(parsed["repeat"], 2);
  EXPECT_EQ(parsed["params"], (Value{{"values", {1, 2}}, {"offset", 3}}));
  EXPECT_EQ(parsed["status"], "ok");
  EXPECT_EQ(parsed["result"], (Value{{"sum", 6}, {"count", 2}}));
  EXPECT_EQ(parsed["worker"], 4242);
  EXPECT_DOUBLE_EQ(parsed["seconds"].get<double>(), 0.25);
  EXPECT_EQ(line.rfind("{\"run\":\"demo\",\"analysis\":\"example.sum\",\"task\":4,\"repeat\":2,", 0), 0u) << line;
}

TEST(RecordFormat, ErrorRecordReplacesResult) {
  const std::vector<std::pair<mathpool::ErrorKind, std::string>> kinds = {
      {mathpool::ErrorKind::invalid_params, "error"},
      {mathpool::ErrorKind::plugin_error, "error"},
      {mathpool::ErrorKind::timeout, "timeout"},
      {mathpool::ErrorKind::crashed, "crashed"},
      {mathpool::ErrorKind::memory, "memory"}};
  for (const auto& [kind, status] : kinds) {
    mathpool::TaskResult result;
    result.error = mathpool::TaskError{kind, "it went \"wrong\"\nbadly"};
    result.worker = 7;
    const Value parsed = Value::parse(mathpool::format_record(mathpool::make_record(sample_task(), result)));
    EXPECT_EQ(keys_of(parsed), (std::vector<std::string>{"run", "analysis", "task", "repeat", "params", "status",
                                                         "error", "worker", "seconds"}));
    EXPECT_EQ(parsed["status"], status);
    EXPECT_EQ(parsed["error"]["kind"], std::string(mathpool::to_string(kind)));
    EXPECT_EQ(parsed["error"]["message"], "it went \"wrong\"\nbadly");
    EXPECT_EQ(keys_of(parsed["error"]), (std::vector<std::string>{"kind", "message"}));
  }
}

TEST(RecordFormat, IntegersFrom2To63BecomeDecimalStrings) {
  mathpool::TaskPlan task = sample_task();
  task.params = Value{{"big", std::uint64_t{1} << 63}};
  mathpool::TaskResult result;
  result.result = Value{{"max", std::numeric_limits<std::int64_t>::max()},
                        {"min", std::numeric_limits<std::int64_t>::min()},
                        {"small_unsigned", std::uint64_t{5}},
                        {"two63", std::uint64_t{1} << 63},
                        {"nested", {{{"u", std::numeric_limits<std::uint64_t>::max()}}, std::uint64_t{12}}}};
  const std::string line = mathpool::format_record(mathpool::make_record(task, result));
  const Value parsed = Value::parse(line);
  EXPECT_EQ(parsed["params"]["big"], "9223372036854775808");
  EXPECT_TRUE(parsed["result"]["max"].is_number_integer());
  EXPECT_EQ(parsed["result"]["max"].get<std::int64_t>(), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(parsed["result"]["min"].get<std::int64_t>(), std::numeric_limits<std::int64_t>::min());
  EXPECT_TRUE(parsed["result"]["small_unsigned"].is_number());
  EXPECT_EQ(parsed["result"]["small_unsigned"], 5);
  EXPECT_EQ(parsed["result"]["two63"], "9223372036854775808");
  EXPECT_EQ(parsed["result"]["nested"][0]["u"], "18446744073709551615");
  EXPECT_EQ(parsed["result"]["nested"][1], 12);
  EXPECT_NE(line.find("\"two63\":\"9223372036854775808\""), std::string::npos) << line;
}

TEST(RecordFormat, InvalidUtf8IsReplacedNotThrown) {
  mathpool::TaskResult result;
  result.result = Value{{"s", std::string("a\xff" "b")}};
  std::string line;
  ASSERT_NO_THROW(line = mathpool::format_record(mathpool::make_record(sample_task(), result)));
  EXPECT_NO_THROW({
    const Value parsed = Value::parse(line);
    (void)parsed;
  });
}

TEST(RecordResume, MissingFileHasNoRecords) {
  mathpool::test::TempDir dir;
  EXPECT_TRUE(mathpool::read_finished_records(dir.path() / "none.jsonl").empty());
}

TEST(RecordResume, CompleteFileIsLeftAlone) {
  mathpool::test::TempDir dir;
  const std::string text =
      "{\"run\":\"a\",\"task\":0,\"repeat\":0,\"status\":\"ok\"}\n"
      "{\"run\":\"a\",\"task\":0,\"repeat\":1,\"status\":\"ok\"}\n"
      "{\"run\":\"b\",\"task\":3,\"repeat\":0,\"status\":\"error\"}\n";
  const fs::path file = dir.write("r.jsonl", text);
  const auto done = mathpool::read_finished_records(file);
  EXPECT_EQ(done, (std::set<mathpool::RecordKey>{{"a", 0, 0}, {"a", 0, 1}, {"b", 3, 0}}));
  EXPECT_EQ(read_text(file), text);
}

TEST(RecordResume, CutLastLineIsTruncatedAway) {
  mathpool::test::TempDir dir;
  const std::string good =
      "{\"run\":\"a\",\"task\":0,\"repeat\":0,\"status\":\"ok\"}\n"
      "{\"run\":\"a\",\"task\":1,\"repeat\":0,\"status\":\"ok\"}\n";
  const fs::path file = dir.write("r.jsonl", good + "{\"run\":\"a\",\"task\":2,\"rep");
  const auto done = mathpool::read_finished_records(file);
  EXPECT_EQ(done, (std::set<mathpool::RecordKey>{{"a", 0, 0}, {"a", 1, 0}}));
  EXPECT_EQ(read_text(file), good);
  // A complete-looking record without its newline is also cut (it may be partial).
  const fs::path file2 = dir.write("r2.jsonl", good + "{\"run\":\"a\",\"task\":2,\"repeat\":0}");
  EXPECT_EQ(mathpool::read_finished_records(file2).size(), 2u);
  EXPECT_EQ(read_text(file2), good);
  // Only a cut line: the file becomes empty.
  const fs::path file3 = dir.write("r3.jsonl", "{\"run\":");
  EXPECT_TRUE(mathpool::read_finished_records(file3).empty());
  EXPECT_EQ(fs::file_size(file3), 0u);
}

TEST(RecordResume, GarbageLineInTheMiddleThrowsNamingTheLine) {
  mathpool::test::TempDir dir;
  const std::string text =
      "{\"run\":\"a\",\"task\":0,\"repeat\":0}\n"
      "this is not json\n"
      "{\"run\":\"a\",\"task\":1,\"repeat\":0}\n";
  const fs::path file = dir.write("r.jsonl", text);
  try {
    mathpool::read_finished_records(file);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(file.string() + ":2:"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_text(file), text);  // nothing is cut from a file that is refused
  // JSON that is not a record (no run/task/repeat) is refused too.
  const fs::path other = dir.write("o.jsonl", "{\"run\":\"a\",\"task\":0,\"repeat\":0}\n[1,2]\n");
  EXPECT_THROW(mathpool::read_finished_records(other), std::runtime_error);
  const fs::path no_repeat = dir.write("n.jsonl", "{\"run\":\"a\",\"task\":0}\n");
  EXPECT_THROW(mathpool::read_finished_records(no_repeat), std::runtime_error);
}

namespace mathpool {
namespace {

TEST(ConfigOptions, ChunkSizeIsAutoOrAPositiveInteger) {
  EXPECT_EQ(parse_config("analyses: [{name: a, analysis: x}]\n", "c.yaml").pool.chunk_size, 0);
  EXPECT_EQ(parse_config("pool: {chunk_size: auto}\nanalyses: [{name: a, analysis: x}]\n", "c.yaml")
                .pool.chunk_size,
            0);
  EXPECT_EQ(parse_config("pool: {chunk_size: 64}\nanalyses: [{name: a, analysis: x}]\n", "c.yaml")
                .pool.chunk_size,
            64);
  try {
    parse_config("pool: {chunk_size: 0}\nanalyses: [{name: a, analysis: x}]\n", "c.yaml");
    FAIL() << "chunk_size 0 was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("c.yaml:1: key 'pool.chunk_size'"), std::string::npos) << e.what();
  }
}

TEST(ConfigSweep, EntriesOfAnySizeAreCountedNotExpanded) {
  // Two billion tasks: accepted at once, counted without being generated.
  const RunConfig big = parse_config("analyses:\n  - {name: a, analysis: x, repeat: 2000000000}\n", "c.yaml");
  EXPECT_EQ(big.analyses[0].task_count(), 2000000000u);
  const RunConfig huge = parse_config(
      "analyses:\n  - {name: a, analysis: x, repeat: 1000, sweep: {n: {range: [0, 1000000000000]}}}\n", "c.yaml");
  EXPECT_EQ(huge.analyses[0].task_count(), 1000000000000000u);
}

TEST(ConfigErrors, EntryBeyondWhatCanBeCountedIsRefused) {
  try {
    parse_config("analyses:\n  - {name: a, analysis: x, repeat: 2000000000,\n"
                 "     sweep: {n: {range: [0, 9000000000000000000]}}}\n",
                 "c.yaml");
    FAIL() << "an entry of more than 2^64 tasks was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("c.yaml:2: key 'analyses[0]': expands to more tasks than can be counted"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace mathpool

namespace mathpool {
namespace {

TEST(RecordFormat, HeadAndTailMakeTheSameLineAsTheWholeRecord) {
  TaskPlan task{"run", "example.echo", 3, 1, {{"big", 18446744073709551615ull}, {"s", "x"}}};
  TaskResult ok;
  ok.result = {{"n", 1}, {"huge", 9223372036854775808ull}};
  ok.worker = 42;
  ok.seconds = 0.5;
  TaskResult failed;
  failed.error = TaskError{ErrorKind::timeout, "too slow"};
  TaskResult measured = ok;  // seconds whose grisu2 digits are not the shortest
  measured.seconds = 8033e-9;
  measured.result = {{"ratio", 8033e-9}, {"third", 1.0 / 3}};
  for (const TaskResult& result : {ok, failed, measured})
    EXPECT_EQ(record_head(task) + record_tail(result), format_record(make_record(task, result)));
  EXPECT_NE(format_record(make_record(task, measured)).find("\"seconds\":8.033e-06"), std::string::npos);
  TaskPlan empty{"e", "a", 0, 0, Value::object()};
  EXPECT_EQ(record_head(empty) + record_tail(ok), format_record(make_record(empty, ok)));
  TaskPlan odd{"quote\"d \u00fcn\u00efcode", "a.b", 7, 2, {{"list", {1, -2, 3.5, nullptr, true}}}};
  TaskResult strange;
  strange.error = TaskError{ErrorKind::crashed, "say \"hi\"\n\tbye \xff"};
  strange.seconds = 1.25e-05;
  EXPECT_EQ(record_head(odd) + record_tail(strange), format_record(make_record(odd, strange)));
}

}  // namespace
}  // namespace mathpool

namespace mathpool {
namespace {

TEST(ConfigOptions, SetupTimeoutIsADurationAndNeverNone) {
  EXPECT_EQ(parse_config("analyses: [{name: a, analysis: x}]\n", "c.yaml").pool.setup_timeout,
            std::chrono::seconds(120));
  EXPECT_EQ(parse_config("pool: {setup_timeout: 5s}\nanalyses: [{name: a, analysis: x}]\n", "c.yaml")
                .pool.setup_timeout,
            std::chrono::seconds(5));
  try {
    parse_config("pool: {setup_timeout: none}\nanalyses: [{name: a, analysis: x}]\n", "c.yaml");
    FAIL() << "setup_timeout: none was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("c.yaml:1: key 'pool.setup_timeout'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mathpool
