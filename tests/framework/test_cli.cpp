// End-to-end tests of the `mathpool` command: exit codes, records on stdout and
// in files, error lines, validate/plugins/describe, large runs, resume, crashes.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "test_support.hpp"

namespace fs = std::filesystem;
using mathpool::Value;
using mathpool::test::CommandResult;
using mathpool::test::parse_records;
using mathpool::test::read_records;
using mathpool::test::read_text;
using mathpool::test::run_mathpool;
using mathpool::test::TempDir;

namespace {

const std::string kTestkit = TESTKIT_PLUGIN;


std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// "[0, 1, ..., n-1]"
std::string int_list(int n, int from = 0) {
  std::string list = "[";
  for (int i = 0; i < n; ++i) list += (i ? ", " : "") + std::to_string(from + i);
  return list + "]";
}

using Key = std::tuple<std::string, std::size_t, int>;
Key key_of(const Value& record) {
  return {record.at("run").get<std::string>(), record.at("task").get<std::size_t>(),
          record.at("repeat").get<int>()};
}

std::string describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stdout (first 2000)\n" + r.out.substr(0, 2000) +
         "\n--- stderr\n" + r.err;
}

// Stderr of a run off a terminal: its summary only (no progress line, no errors).
bool only_summary(const std::string& err) {
  return err.rfind("mathpool: ", 0) == 0 && err.find('\r') == std::string::npos &&
         err.find("error:") == std::string::npos && err.find("warning:") == std::string::npos;
}

// A config error line: exactly one line, "mathpool: error: " first.
void expect_one_error_line(const CommandResult& r) {
  EXPECT_EQ(r.err.rfind("mathpool: error: ", 0), 0u) << describe(r);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << describe(r);
  EXPECT_EQ(r.err.back(), '\n') << describe(r);
}

}  // namespace

// ---------------------------------------------------------------- exit 0 and outputs

TEST(CliRun, AllOkWritesRecordsInTaskOrderOnStdout) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "pool: {workers: 2}\n"
                                    "analyses:\n"
                                    "  - name: sums\n"
                                    "    analysis: example.sum\n"
                                    "    params: {offset: 10}\n"
                                    "    sweep:\n"
                                    "      values: [[1], [2, 3], [4, 5, 6]]\n"
                                    "  - name: echo\n"
                                    "    analysis: example.echo\n"
                                    "    params: {word: hi, n: 3}\n"
                                    "    repeat: 2\n");
  const CommandResult r = run_mathpool({"run", config.string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(only_summary(r.err)) << "stderr is not a terminal: no progress, no noise\n" << r.err;
  const auto records = parse_records(r.out);
  ASSERT_EQ(records.size(), 5u) << r.out;
  const std::vector<Key> expected = {{"sums", 0, 0}, {"sums", 1, 0}, {"sums", 2, 0}, {"echo", 0, 0}, {"echo", 0, 1}};
  const std::vector<int> sums = {11, 15, 25};
  for (std::size_t i = 0; i < records.size(); ++i) {
    const Value& rec = records[i];
    EXPECT_EQ(key_of(rec), expected[i]) << rec.dump();
    EXPECT_EQ(rec["status"], "ok") << rec.dump();
    EXPECT_GT(rec["worker"].get<int>(), 0) << rec.dump();
    EXPECT_GE(rec["seconds"].get<double>(), 0.0) << rec.dump();
    EXPECT_FALSE(rec.contains("error")) << rec.dump();
    if (i < 3) {
      EXPECT_EQ(rec["analysis"], "example.sum");
      EXPECT_EQ(rec["result"]["sum"], sums[i]) << rec.dump();
      EXPECT_EQ(rec["result"]["count"], i + 1) << rec.dump();
      EXPECT_EQ(rec["params"]["offset"], 10);
    } else {
      EXPECT_EQ(rec["analysis"], "example.echo");
      EXPECT_EQ(rec["result"], (Value{{"word", "hi"}, {"n", 3}})) << rec.dump();
      EXPECT_EQ(rec["params"], rec["result"]);
    }
  }
  // The key order of the README's result records, on the wire.
  EXPECT_EQ(lines_of(r.out)[0].rfind("{\"run\":\"sums\",\"analysis\":\"example.sum\",\"task\":0,\"repeat\":0,"
                                     "\"params\":",
                                     0),
            0u)
      << r.out;
}

TEST(CliRun, OutputKeyIsRelativeToTheConfigFile) {
  TempDir dir;
  fs::create_directories(dir.path() / "cfg");
  const fs::path config = dir.write("cfg/run.yaml",
                                    "pool: {workers: 1}\n"
                                    "output: results.jsonl\n"
                                    "analyses:\n"
                                    "  - name: e\n"
                                    "    analysis: example.echo\n"
                                    "    sweep: {x: [1, 2, 3]}\n");
  const CommandResult r = run_mathpool({"run", config.string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, "") << "records go to the output file, not stdout";
  EXPECT_TRUE(only_summary(r.err)) << r.err;
  const fs::path output = dir.path() / "cfg" / "results.jsonl";
  ASSERT_TRUE(fs::exists(output));
  const auto records = read_records(output);
  ASSERT_EQ(records.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(key_of(records[i]), Key("e", i, 0));
    EXPECT_EQ(records[i]["result"]["x"], i + 1);
  }
  EXPECT_EQ(read_text(output).back(), '\n');
}

TEST(CliRun, DashOOverridesTheConfigOutput) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "pool: {workers: 1}\n"
                                    "output: results.jsonl\n"
                                    "analyses:\n"
                                    "  - name: e\n"
                                    "    analysis: example.echo\n"
                                    "    sweep: {x: [1, 2]}\n");
  const fs::path other = dir.path() / "other.jsonl";
  const CommandResult r = run_mathpool({"run", config.string(), "-o", other.string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(fs::exists(dir.path() / "results.jsonl"));
  const auto records = read_records(other);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1]["result"]["x"], 2);

  // "-o -" sends the records to stdout although the config names a file.
  const CommandResult to_stdout = run_mathpool({"run", config.string(), "--output", "-"});
  ASSERT_EQ(to_stdout.exit_code, 0) << describe(to_stdout);
  EXPECT_EQ(parse_records(to_stdout.out).size(), 2u) << to_stdout.out;
  EXPECT_FALSE(fs::exists(dir.path() / "results.jsonl"));
}

TEST(CliRun, OptionsMayComeBeforeTheConfig) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml", "analyses:\n  - {name: p, analysis: testkit.pid}\n");
  const CommandResult r =
      run_mathpool({"run", "--plugin-path", kTestkit, "--workers", "1", config.string(), "-o", "-"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto records = parse_records(r.out);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["status"], "ok");
}

TEST(CliRun, ExistingOutputIsReplacedOnlyWithForce) {
  TempDir dir;
  const fs::path output = dir.write("out.jsonl", "old content that is not a record\n");
  const fs::path config = dir.write("run.yaml",
                                    "pool: {workers: 1}\n"
                                    "output: out.jsonl\n"
                                    "analyses:\n"
                                    "  - {name: e, analysis: example.echo, params: {k: 1}}\n");
  const CommandResult refused = run_mathpool({"run", config.string()});
  ASSERT_EQ(refused.exit_code, 2) << describe(refused);
  expect_one_error_line(refused);
  EXPECT_EQ(read_text(output), "old content that is not a record\n");
  const CommandResult r = run_mathpool({"run", config.string(), "--force"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto records = read_records(output);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["result"], (Value{{"k", 1}}));
}

// ---------------------------------------------------------------- exit 1

TEST(CliRun, FailedTaskGivesExit1AndTheOtherRecordsAreWritten) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "pool: {workers: 2}\n"
                                    "analyses:\n"
                                    "  - name: s\n"
                                    "    analysis: example.sum\n"
                                    "    sweep:\n"
                                    "      values: [[1, 2], \"no\", [3]]\n");
  const CommandResult r = run_mathpool({"run", config.string()});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  const auto records = parse_records(r.out);
  ASSERT_EQ(records.size(), 3u) << describe(r);
  EXPECT_EQ(records[0]["status"], "ok");
  EXPECT_EQ(records[0]["result"]["sum"], 3);
  EXPECT_EQ(records[1]["status"], "error") << records[1].dump();
  EXPECT_FALSE(records[1].contains("result")) << records[1].dump();
  ASSERT_TRUE(records[1].contains("error")) << records[1].dump();
  EXPECT_EQ(records[1]["error"]["kind"], "invalid_params") << records[1].dump();
  EXPECT_TRUE(contains(records[1]["error"]["message"].get<std::string>(), "values")) << records[1].dump();
  EXPECT_EQ(records[1]["params"]["values"], "no");
  EXPECT_EQ(records[2]["status"], "ok");
  EXPECT_EQ(records[2]["result"]["sum"], 3);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(records[i]["task"], i);
}

// ---------------------------------------------------------------- exit 2

TEST(CliUsage, NoSubcommand) {
  const CommandResult r = run_mathpool({});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_EQ(r.err.rfind("mathpool: error:", 0), 0u) << describe(r);
  EXPECT_EQ(r.out, "");
}

TEST(CliUsage, UnknownFlag) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml", "analyses:\n  - {name: e, analysis: example.echo}\n");
  const CommandResult r = run_mathpool({"run", config.string(), "--bogus"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_EQ(r.err.rfind("mathpool: error:", 0), 0u) << describe(r);
  EXPECT_TRUE(contains(r.err, "--bogus")) << describe(r);
  EXPECT_EQ(r.out, "") << "nothing ran";
}

TEST(CliUsage, UnknownSubcommand) {
  const CommandResult r = run_mathpool({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_EQ(r.err.rfind("mathpool: error:", 0), 0u) << describe(r);
}

TEST(CliUsage, MissingConfigArgument) {
  const CommandResult r = run_mathpool({"run"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_EQ(r.err.rfind("mathpool: error:", 0), 0u) << describe(r);
  EXPECT_TRUE(contains(r.err, "CONFIG")) << describe(r);
  const CommandResult v = run_mathpool({"validate"});
  EXPECT_EQ(v.exit_code, 2) << describe(v);
}

TEST(CliUsage, BadWorkersValue) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml", "analyses:\n  - {name: e, analysis: example.echo}\n");
  for (const std::string bad : {"0", "-3", "many"}) {
    const CommandResult r = run_mathpool({"run", config.string(), "--workers", bad});
    EXPECT_EQ(r.exit_code, 2) << bad << "\n" << describe(r);
    EXPECT_EQ(r.out, "") << bad;
  }
}

TEST(CliUsage, HelpExitsZero) {
  const CommandResult r = run_mathpool({"--help"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "run")) << r.out;
  EXPECT_TRUE(contains(r.out, "validate")) << r.out;
}

TEST(CliErrors, MissingConfigFile) {
  TempDir dir;
  const fs::path config = dir.path() / "absent.yaml";
  const CommandResult r = run_mathpool({"run", config.string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, config.string())) << describe(r);
  EXPECT_EQ(r.out, "");
}

TEST(CliErrors, ConfigErrorIsOneLineNamingFileLineAndKey) {
  TempDir dir;
  const fs::path config = dir.write("bad.yaml",
                                    "output: results.jsonl\n"
                                    "pool:\n"
                                    "  workers: 2\n"
                                    "  bogus: 1\n"
                                    "analyses:\n"
                                    "  - {name: e, analysis: example.echo}\n");
  const CommandResult r = run_mathpool({"run", config.string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_EQ(r.err.rfind("mathpool: error: " + config.string() + ":4: key 'pool.bogus'", 0), 0u) << describe(r);
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(fs::exists(dir.path() / "results.jsonl")) << "nothing ran, nothing written";
}

TEST(CliErrors, ConfigErrorInAnEntry) {
  TempDir dir;
  const fs::path config = dir.write("bad.yaml",
                                    "analyses:\n"
                                    "  - name: a\n"
                                    "    analysis: example.echo\n"
                                    "  - name: b\n"
                                    "    analysis: example.echo\n"
                                    "    repeat: 0\n");
  const CommandResult r = run_mathpool({"run", config.string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_EQ(r.err.rfind("mathpool: error: " + config.string() + ":6: key 'analyses[1].repeat'", 0), 0u)
      << describe(r);
}

TEST(CliErrors, InvalidYamlIsOneLine) {
  TempDir dir;
  const fs::path config = dir.write("bad.yaml", "analyses: [\n  {name: a\n");
  const CommandResult r = run_mathpool({"run", config.string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, config.string() + ":")) << describe(r);
}

TEST(CliErrors, UnknownAnalysisName) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "output: results.jsonl\n"
                                    "analyses:\n"
                                    "  - name: fine\n"
                                    "    analysis: example.echo\n"
                                    "  - analysis: nope.nothing\n"
                                    "    name: broken\n");
  const CommandResult r = run_mathpool({"run", config.string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_EQ(r.err.rfind("mathpool: error: " + config.string() + ":5: key 'analyses[1].analysis'", 0), 0u)
      << describe(r);
  EXPECT_TRUE(contains(r.err, "nope.nothing")) << describe(r);
  EXPECT_TRUE(contains(r.err, "example.echo")) << "lists the loaded analyses\n" << describe(r);
  EXPECT_FALSE(fs::exists(dir.path() / "results.jsonl")) << "nothing ran: no task of the good entry either";
}

TEST(CliErrors, PluginLoadErrorNamesTheFile) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml", "analyses:\n  - {name: e, analysis: example.echo}\n");
  const fs::path missing = dir.path() / "no_such_plugin.so";
  const CommandResult r = run_mathpool({"run", config.string(), "--plugin-path", missing.string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, missing.string())) << describe(r);
  EXPECT_EQ(r.out, "");
}

TEST(CliErrors, NotAPluginFileIsALoadError) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml", "analyses:\n  - {name: e, analysis: example.echo}\n");
  const CommandResult r = run_mathpool({"run", config.string(), "--plugin-path", NOT_A_PLUGIN});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, fs::path(NOT_A_PLUGIN).filename().string())) << describe(r);
}

TEST(CliErrors, ConfigPluginPathToAMissingFile) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "plugin_path: [lib/gone.so]\n"
                                    "analyses:\n  - {name: e, analysis: example.echo}\n");
  const CommandResult r = run_mathpool({"run", config.string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "gone.so")) << describe(r);
}

TEST(CliErrors, ResumeToStdoutIsRefused) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml", "analyses:\n  - {name: e, analysis: example.echo}\n");
  const CommandResult r = run_mathpool({"run", config.string(), "--resume"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_EQ(r.out, "");
}

// ---------------------------------------------------------------- validate, plugins, describe

TEST(CliValidate, OkWithoutRunningAnything) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "output: results.jsonl\n"
                                    "analyses:\n"
                                    "  - name: boom\n"
                                    "    analysis: testkit.segfault\n"
                                    "    repeat: 2\n"
                                    "  - name: e\n"
                                    "    analysis: example.echo\n"
                                    "    sweep: {x: [1, 2, 3]}\n");
  const CommandResult r = run_mathpool({"validate", config.string(), "--plugin-path", kTestkit});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "ok")) << r.out;
  EXPECT_TRUE(contains(r.out, "2 analyses")) << r.out;
  EXPECT_TRUE(contains(r.out, "5 tasks")) << r.out;
  EXPECT_EQ(r.err, "");
  EXPECT_FALSE(fs::exists(dir.path() / "results.jsonl")) << "validate must not run the tasks";
}

TEST(CliValidate, ConfigPluginPathIsUsed) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "plugin_path: " + kTestkit + "\n"
                                    "analyses:\n  - {name: p, analysis: testkit.pid}\n");
  const CommandResult r = run_mathpool({"validate", config.string()});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
}

TEST(CliValidate, FailingConfig) {
  TempDir dir;
  const fs::path bad_key = dir.write("bad.yaml",
                                     "analyses:\n"
                                     "  - name: e\n"
                                     "    analysis: example.echo\n"
                                     "    sweep: {x: [1], y: {csv: missing.csv}}\n");
  const CommandResult r = run_mathpool({"validate", bad_key.string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_EQ(r.err.rfind("mathpool: error: " + bad_key.string() + ":4: key 'analyses[0].sweep.y.csv'", 0), 0u)
      << describe(r);
  EXPECT_EQ(r.out, "");

  const fs::path unknown = dir.write("unknown.yaml", "analyses:\n  - {name: e, analysis: example.nope}\n");
  const CommandResult u = run_mathpool({"validate", unknown.string()});
  EXPECT_EQ(u.exit_code, 2) << describe(u);
  expect_one_error_line(u);
  EXPECT_TRUE(contains(u.err, "analyses[0].analysis")) << describe(u);
  EXPECT_TRUE(contains(u.err, "example.nope")) << describe(u);
}

TEST(CliPlugins, ListsExampleAnalysesWithVersionAndDescription) {
  const CommandResult r = run_mathpool({"plugins"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  bool echo = false, sum = false;
  for (const std::string& line : lines_of(r.out)) {
    if (line.rfind("example.echo ", 0) == 0) {
      echo = true;
      EXPECT_TRUE(contains(line, "1.0.0")) << line;
      EXPECT_TRUE(contains(line, "Returns its parameters unchanged")) << line;
      EXPECT_TRUE(contains(line, "example")) << line;
      EXPECT_TRUE(contains(line, ".so")) << "names the plugin file: " << line;
    }
    if (line.rfind("example.sum ", 0) == 0) {
      sum = true;
      EXPECT_TRUE(contains(line, "Adds a list of integers to an offset")) << line;
    }
  }
  EXPECT_TRUE(echo) << r.out;
  EXPECT_TRUE(sum) << r.out;
  EXPECT_FALSE(contains(r.out, "testkit.")) << "testkit is not in the default plugin directory";
}

TEST(CliPlugins, PluginPathAddsAnalyses) {
  const CommandResult r = run_mathpool({"plugins", "--plugin-path", kTestkit});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "testkit.segfault")) << r.out;
  EXPECT_TRUE(contains(r.out, "Dereferences a null pointer")) << r.out;
  EXPECT_TRUE(contains(r.out, fs::path(kTestkit).filename().string())) << r.out;
  EXPECT_TRUE(contains(r.out, "example.echo")) << r.out;
}

TEST(CliPlugins, LoadErrorExits2) {
  const CommandResult r = run_mathpool({"plugins", "--plugin-path", "/nonexistent/dir/plug.so"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, "/nonexistent/dir/plug.so")) << describe(r);
}

TEST(CliDescribe, ExampleSumParametersAndResults) {
  const CommandResult r = run_mathpool({"describe", "example.sum"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "example.sum")) << r.out;
  EXPECT_TRUE(contains(r.out, "1.0.0")) << r.out;
  EXPECT_TRUE(contains(r.out, "Adds a list of integers to an offset")) << r.out;
  const auto lines = lines_of(r.out);
  auto line_with = [&](const std::string& word) -> std::string {
    for (const auto& line : lines)
      if (line.rfind("  " + word + " ", 0) == 0) return line;
    return "";
  };
  const std::string values = line_with("values");
  EXPECT_TRUE(contains(values, "list of integers")) << r.out;
  EXPECT_TRUE(contains(values, "required")) << r.out;
  EXPECT_TRUE(contains(values, "the numbers to add")) << r.out;
  const std::string offset = line_with("offset");
  EXPECT_TRUE(contains(offset, "integer")) << r.out;
  EXPECT_TRUE(contains(offset, "default 0")) << r.out;
  EXPECT_TRUE(contains(offset, "added to the sum")) << r.out;
  const auto results_at = r.out.find("result");
  const auto params_at = r.out.find("param");
  ASSERT_NE(results_at, std::string::npos) << r.out;
  ASSERT_NE(params_at, std::string::npos) << r.out;
  // sum and count are listed as result fields, after the parameters.
  const std::string sum = line_with("sum");
  const std::string count = line_with("count");
  EXPECT_TRUE(contains(sum, "offset + the sum of values")) << r.out;
  EXPECT_TRUE(contains(count, "how many values were added")) << r.out;
  EXPECT_GT(r.out.find("  sum "), r.out.find("  offset ")) << r.out;
}

TEST(CliDescribe, OpenParamsAnalysis) {
  const CommandResult r = run_mathpool({"describe", "example.echo"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "Returns its parameters unchanged")) << r.out;
  EXPECT_TRUE(contains(r.out, "(any)")) << r.out;
}

TEST(CliDescribe, UnknownAnalysisExits2) {
  const CommandResult r = run_mathpool({"describe", "example.nope"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, "example.nope")) << describe(r);
  EXPECT_EQ(r.out, "");
}

// ---------------------------------------------------------------- large runs, workers, sweeps

TEST(CliRun, TenThousandEchoTasksInOrder) {
  TempDir dir;
  constexpr int kTasks = 10000;
  const fs::path config = dir.write("big.yaml",
                                    "output: big.jsonl\n"
                                    "analyses:\n"
                                    "  - name: big\n"
                                    "    analysis: example.echo\n"
                                    "    params: {tag: t}\n"
                                    "    sweep:\n"
                                    "      x: " + int_list(kTasks) + "\n");
  const auto start = std::chrono::steady_clock::now();
  const CommandResult r = run_mathpool({"run", config.string()});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ info ] mathpool run of " << kTasks << " example.echo tasks: " << seconds << " s wall\n";
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(only_summary(r.err)) << r.err;
  const std::string text = read_text(dir.path() / "big.jsonl");
  const auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), std::size_t(kTasks));
  EXPECT_EQ(text.back(), '\n');
  for (int i = 0; i < kTasks; ++i) {
    const Value rec = Value::parse(lines[i]);
    ASSERT_EQ(key_of(rec), Key("big", std::size_t(i), 0)) << "line " << i + 1 << ": " << lines[i];
    ASSERT_EQ(rec["status"], "ok") << lines[i];
    ASSERT_EQ(rec["result"]["x"], i) << lines[i];
    ASSERT_EQ(rec["result"]["tag"], "t") << lines[i];
  }
}

TEST(CliRun, RepeatManyTimes) {
  TempDir dir;
  constexpr int kRepeats = 2000;
  const fs::path config = dir.write("rep.yaml",
                                    "analyses:\n"
                                    "  - name: rep\n"
                                    "    analysis: example.echo\n"
                                    "    params: {v: 1}\n"
                                    "    repeat: " + std::to_string(kRepeats) + "\n");
  const CommandResult r = run_mathpool({"run", config.string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto records = parse_records(r.out);
  ASSERT_EQ(records.size(), std::size_t(kRepeats));
  for (int i = 0; i < kRepeats; ++i) {
    ASSERT_EQ(key_of(records[i]), Key("rep", 0, i)) << records[i].dump();
    ASSERT_EQ(records[i]["result"], (Value{{"v", 1}}));
  }
}

TEST(CliRun, WorkersOneGivesOneWorkerPid) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "pool: {workers: 4}\n"
                                    "analyses:\n"
                                    "  - name: p\n"
                                    "    analysis: testkit.pid\n"
                                    "    repeat: 40\n");
  const CommandResult r = run_mathpool({"run", config.string(), "--workers", "1", "--plugin-path", kTestkit});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto records = parse_records(r.out);
  ASSERT_EQ(records.size(), 40u);
  std::set<int> workers;
  for (const Value& rec : records) {
    workers.insert(rec["worker"].get<int>());
    EXPECT_EQ(rec["result"]["pid"], rec["worker"]) << "the record names the worker that ran the task";
  }
  EXPECT_EQ(workers.size(), 1u);
  EXPECT_GT(*workers.begin(), 0);
}

TEST(CliRun, WorkersTwoUsesTwoProcesses) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "analyses:\n"
                                    "  - name: s\n"
                                    "    analysis: testkit.sleep\n"
                                    "    params: {ms: 40}\n"
                                    "    repeat: 8\n");
  const CommandResult r = run_mathpool({"run", config.string(), "--workers", "2", "--plugin-path", kTestkit});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto records = parse_records(r.out);
  ASSERT_EQ(records.size(), 8u);
  std::set<int> workers;
  for (const Value& rec : records) workers.insert(rec["worker"].get<int>());
  EXPECT_EQ(workers.size(), 2u);
}

TEST(CliRun, SweepsAndRepeatsThroughTheCommand) {
  TempDir dir;
  dir.write("regs.csv", "# two registers\n1,1\n\n1,0,1  # x^3 + x^2 + 1\n");
  const fs::path config = dir.write("run.yaml",
                                    "pool: {workers: 2}\n"
                                    "analyses:\n"
                                    "  - name: grid\n"
                                    "    analysis: example.echo\n"
                                    "    params: {base: 0}\n"
                                    "    sweep:\n"
                                    "      a: [1, 2]\n"
                                    "      b: [x, y]\n"
                                    "    repeat: 2\n"
                                    "  - name: csv\n"
                                    "    analysis: example.sum\n"
                                    "    sweep:\n"
                                    "      values: {csv: regs.csv}\n");
  const CommandResult r = run_mathpool({"run", config.string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto records = parse_records(r.out);
  ASSERT_EQ(records.size(), 10u) << r.out;
  const std::vector<std::tuple<std::size_t, int, int, std::string>> grid = {
      {0, 0, 1, "x"}, {0, 1, 1, "x"}, {1, 0, 1, "y"}, {1, 1, 1, "y"},
      {2, 0, 2, "x"}, {2, 1, 2, "x"}, {3, 0, 2, "y"}, {3, 1, 2, "y"}};
  for (std::size_t i = 0; i < grid.size(); ++i) {
    const auto& [task, repeat, a, b] = grid[i];
    EXPECT_EQ(key_of(records[i]), Key("grid", task, repeat)) << records[i].dump();
    EXPECT_EQ(records[i]["params"].dump(), Value({{"base", 0}, {"a", a}, {"b", b}}).dump());
    EXPECT_EQ(records[i]["result"], records[i]["params"]);
  }
  EXPECT_EQ(key_of(records[8]), Key("csv", 0, 0));
  EXPECT_EQ(records[8]["params"]["values"], (Value{1, 1}));
  EXPECT_EQ(records[8]["result"]["sum"], 2);
  EXPECT_EQ(key_of(records[9]), Key("csv", 1, 0));
  EXPECT_EQ(records[9]["params"]["values"], (Value{1, 0, 1}));
  EXPECT_EQ(records[9]["result"]["sum"], 2);
}

TEST(CliRun, BigIntegersAreDecimalStringsInRecords) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "analyses:\n"
                                    "  - name: big\n"
                                    "    analysis: example.echo\n"
                                    "    params: {u: 18446744073709551615, i: 9223372036854775807, s: \"7\"}\n");
  const CommandResult r = run_mathpool({"run", config.string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "\"u\":\"18446744073709551615\"")) << r.out;
  EXPECT_TRUE(contains(r.out, "\"i\":9223372036854775807")) << r.out;
  EXPECT_TRUE(contains(r.out, "\"s\":\"7\"")) << r.out;
}

// ---------------------------------------------------------------- resume

TEST(CliResume, CompletesACutOffRunToExactlyTheCleanRecords) {
  TempDir dir;
  constexpr int kTasks = 30;
  constexpr int kKept = 12;
  const std::string yaml =
      "pool: {workers: 2}\n"
      "output: results.jsonl\n"
      "analyses:\n"
      "  - name: first\n"
      "    analysis: example.echo\n"
      "    sweep: {x: " + int_list(kTasks - 10) + "}\n"
      "  - name: second\n"
      "    analysis: example.sum\n"
      "    params: {values: [1, 2]}\n"
      "    sweep: {offset: [100, 200]}\n"
      "    repeat: 5\n";
  const fs::path config = dir.write("run.yaml", yaml);
  const fs::path output = dir.path() / "results.jsonl";

  const CommandResult clean = run_mathpool({"run", config.string()});
  ASSERT_EQ(clean.exit_code, 0) << describe(clean);
  const std::string clean_text = read_text(output);
  const auto clean_lines = lines_of(clean_text);
  ASSERT_EQ(clean_lines.size(), std::size_t(kTasks));

  // A killed run: the first K records and half of the next one.
  std::string partial;
  for (int i = 0; i < kKept; ++i) partial += clean_lines[i] + "\n";
  const std::string kept_prefix = partial;
  partial += clean_lines[kKept].substr(0, clean_lines[kKept].size() / 2);
  { std::ofstream(output, std::ios::binary | std::ios::trunc) << partial; }

  const CommandResult resumed = run_mathpool({"run", config.string(), "--resume"});
  ASSERT_EQ(resumed.exit_code, 0) << describe(resumed);
  EXPECT_TRUE(only_summary(resumed.err)) << resumed.err;
  const std::string resumed_text = read_text(output);
  EXPECT_EQ(resumed_text.substr(0, kept_prefix.size()), kept_prefix) << "finished records are kept as they were";
  const auto clean_records = parse_records(clean_text);
  std::vector<Value> resumed_records;
  ASSERT_NO_THROW(resumed_records = parse_records(resumed_text)) << resumed_text;
  ASSERT_EQ(resumed_records.size(), clean_records.size()) << resumed_text;
  for (std::size_t i = 0; i < clean_records.size(); ++i) {
    EXPECT_EQ(key_of(resumed_records[i]), key_of(clean_records[i])) << i;
    for (const char* field : {"analysis", "params", "status", "result"})
      EXPECT_EQ(resumed_records[i][field], clean_records[i][field]) << i << " " << field;
  }

  // Resuming a complete file runs nothing and changes nothing.
  const CommandResult again = run_mathpool({"run", config.string(), "--resume"});
  EXPECT_EQ(again.exit_code, 0) << describe(again);
  EXPECT_EQ(read_text(output), resumed_text);
}

TEST(CliResume, MissingOutputRunsEverything) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "output: out.jsonl\n"
                                    "analyses:\n  - {name: e, analysis: example.echo, sweep: {x: [1, 2, 3]}}\n");
  const CommandResult r = run_mathpool({"run", config.string(), "--resume"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(read_records(dir.path() / "out.jsonl").size(), 3u);
}

TEST(CliResume, GarbageInTheOutputIsRefused) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "output: out.jsonl\n"
                                    "analyses:\n  - {name: e, analysis: example.echo, sweep: {x: [1, 2, 3]}}\n");
  const std::string garbage = "{\"run\":\"e\",\"task\":0,\"repeat\":0}\nnot json at all\n";
  const fs::path output = dir.write("out.jsonl", garbage);
  const CommandResult r = run_mathpool({"run", config.string(), "--resume"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  // Line 1 lacks the analysis and params a record of this config has.
  EXPECT_TRUE(contains(r.err, output.string() + ":1: not a result record")) << describe(r);
  EXPECT_EQ(read_text(output), garbage) << "a refused file is left untouched";
}

// A run of three echo tasks whose output (out.jsonl) a test then edits.
fs::path three_echoes_config(const TempDir& dir) {
  const fs::path config = dir.write("run.yaml",
                                    "output: out.jsonl\n"
                                    "analyses:\n  - {name: e, analysis: example.echo, sweep: {x: [1, 2, 3]}}\n");
  EXPECT_EQ(run_mathpool({"run", config.string(), "-q"}).exit_code, 0);
  return config;
}

// A file with two records of one task is not a run's output (a run writes
// one record per task): --resume used to keep the second, and go on.
TEST(CliResume, ASecondRecordOfATaskIsRefusedNamingItsLine) {
  TempDir dir;
  const fs::path config = three_echoes_config(dir);
  const fs::path output = dir.path() / "out.jsonl";
  const auto lines = lines_of(read_text(output));
  ASSERT_EQ(lines.size(), 3u);
  const std::string doubled = lines[0] + "\n" + lines[1] + "\n" + lines[1] + "\n";
  { std::ofstream(output, std::ios::binary | std::ios::trunc) << doubled; }
  const CommandResult r = run_mathpool({"run", config.string(), "--resume"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, output.string() + ":3: a second record of run 'e' task 1 repeat 0")) << describe(r);
  EXPECT_EQ(read_text(output), doubled) << "a refused file is left untouched";
}

// A record whose status is none of the five is not a run's record: refused,
// quoting what it holds (escaped), the file left as it was.
TEST(CliResume, AnUnknownStatusIsRefusedQuotingIt) {
  TempDir dir;
  const fs::path config = three_echoes_config(dir);
  const fs::path output = dir.path() / "out.jsonl";
  std::string text = read_text(output);
  text.replace(text.find("\"status\":\"ok\""), 13, "\"status\":\"o\x1bk\"");
  { std::ofstream(output, std::ios::binary | std::ios::trunc) << text; }
  const CommandResult r = run_mathpool({"run", config.string(), "--resume"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, output.string() + ":1: the record of run 'e' task 0 repeat 0 has the status \"o\\u001bk\", "
                                                "not ok, error, timeout, crashed or memory"))
      << describe(r);
  EXPECT_EQ(read_text(output), text) << "a refused file is left untouched";
}

// A resumed run ends as the whole run would have: its exit status, summary
// and provenance count the records the output held before it too.
TEST(CliResume, TheExitStatusSummaryAndProvenanceCountTheEarlierRecordsToo) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "output: out.jsonl\n"
                                    "plugin_path: [" TESTKIT_PLUGIN "]\n"
                                    "analyses:\n"
                                    "  - {name: bad, analysis: testkit.throw_invalid, repeat: 2}\n"
                                    "  - {name: good, analysis: example.echo, sweep: {x: [1, 2, 3]}}\n");
  ASSERT_EQ(run_mathpool({"run", config.string(), "-q"}).exit_code, 1);
  const fs::path output = dir.path() / "out.jsonl";
  const auto lines = lines_of(read_text(output));
  ASSERT_EQ(lines.size(), 5u);
  // Killed after the failures and one ok record.
  { std::ofstream(output, std::ios::binary | std::ios::trunc) << lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n"; }
  const CommandResult r = run_mathpool({"run", config.string(), "--resume"});
  EXPECT_EQ(r.exit_code, 1) << "the output holds failed tasks\n" << describe(r);
  EXPECT_TRUE(contains(r.err, "mathpool: 2 tasks: 2 ok; 3 already in the output (1 ok, 2 error)\n")) << r.err;
  const Value meta = Value::parse(read_text(output.string() + ".meta.json"));
  const Value& tasks = meta.at("tasks");
  EXPECT_EQ(tasks.at("already_in_output"), 3);
  EXPECT_EQ(tasks.at("by_status"), (Value{{"ok", 2}})) << "this run's own";
  EXPECT_EQ(tasks.at("in_output"), (Value{{"by_status", {{"error", 2}, {"ok", 3}}},
                                          {"by_run", {{"bad", {{"error", 2}}}, {"good", {{"ok", 3}}}}}}))
      << meta.dump();
  // Nothing left to run: the same status, and the summary says what is there.
  const CommandResult again = run_mathpool({"run", config.string(), "--resume"});
  EXPECT_EQ(again.exit_code, 1) << describe(again);
  EXPECT_EQ(again.err, "mathpool: 0 tasks: none; 5 already in the output (3 ok, 2 error)\n");
}

// ---------------------------------------------------------------- crashes

TEST(CliCrash, SegfaultInTheMiddleIsACrashedRecordAndTheRunGoesOn) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml",
                                    "pool: {workers: 2}\n"
                                    "analyses:\n"
                                    "  - name: before\n"
                                    "    analysis: example.echo\n"
                                    "    sweep: {x: [0, 1, 2]}\n"
                                    "  - name: boom\n"
                                    "    analysis: testkit.segfault\n"
                                    "  - name: after\n"
                                    "    analysis: example.echo\n"
                                    "    sweep: {x: [3, 4, 5]}\n");
  const CommandResult r = run_mathpool({"run", config.string(), "--plugin-path", kTestkit});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  const auto records = parse_records(r.out);
  ASSERT_EQ(records.size(), 7u) << describe(r);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(key_of(records[i]), Key("before", std::size_t(i), 0));
    EXPECT_EQ(records[i]["status"], "ok") << records[i].dump();
  }
  const Value& crash = records[3];
  EXPECT_EQ(key_of(crash), Key("boom", 0, 0));
  EXPECT_EQ(crash["status"], "crashed") << crash.dump();
  ASSERT_TRUE(crash.contains("error")) << crash.dump();
  EXPECT_FALSE(crash.contains("result")) << crash.dump();
  EXPECT_EQ(crash["error"]["kind"], "crashed") << crash.dump();
  EXPECT_TRUE(contains(crash["error"]["message"].get<std::string>(), "SIGSEGV")) << crash.dump();
  for (int i = 4; i < 7; ++i) {
    EXPECT_EQ(key_of(records[i]), Key("after", std::size_t(i - 4), 0));
    EXPECT_EQ(records[i]["status"], "ok") << records[i].dump();
    EXPECT_EQ(records[i]["result"]["x"], i - 1);
  }
}

// ---------------------------------------------------------------- progress

TEST(CliProgress, NoProgressOnANonTerminalStderr) {
  TempDir dir;
  // Long enough (> 0.5 s) that the progress line would have been refreshed.
  const fs::path config = dir.write("run.yaml",
                                    "pool: {workers: 2}\n"
                                    "output: out.jsonl\n"
                                    "analyses:\n"
                                    "  - name: s\n"
                                    "    analysis: testkit.sleep\n"
                                    "    params: {ms: 150}\n"
                                    "    repeat: 8\n");
  const CommandResult r = run_mathpool({"run", config.string(), "--plugin-path", kTestkit});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(only_summary(r.err)) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(read_records(dir.path() / "out.jsonl").size(), 8u);
}

namespace mathpool {
namespace {

TEST(CliRun, UnwritableOutputIsAnErrorNotASilentSuccess) {
  test::TempDir dir;
  const auto config = dir.write("run.yaml", "analyses:\n  - {name: e, analysis: example.echo, repeat: 5}\n");
  const auto result = test::run_mathpool({"run", config.string(), "-o", "/dev/full"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("mathpool: error: cannot write the output"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace mathpool
