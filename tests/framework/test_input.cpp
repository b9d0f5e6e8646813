// Hostile and odd input: huge scalars, alias bombs, deep nesting, numbers out
// of range, command-line mistakes. Every one must end as one located error
// line with exit status 2, quickly and in little memory.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "host/config/yaml_value.hpp"
#include "mathpool/config.hpp"
#include "test_support.hpp"

extern char** environ;

namespace fs = std::filesystem;
using mathpool::ConfigError;
using mathpool::Value;
using mathpool::test::TempDir;

namespace {

// One run of the command, with what it cost.
struct Measured {
  int exit_code = -1;
  std::string out, err;
  double seconds = 0;
  long max_rss_kib = 0;
};

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs mathpool with `args` (output to files in `dir`) and measures its wall
// time and peak memory (wait4's rusage of exactly this child).
Measured run_measured(const TempDir& dir, const std::vector<std::string>& args) {
  std::vector<std::string> all = {MATHPOOL_CLI};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const fs::path out = dir.path() / "cmd.out", err = dir.path() / "cmd.err";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, MATHPOOL_CLI, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start mathpool");
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  Measured m;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.max_rss_kib = usage.ru_maxrss;
  m.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  m.out = read_text(out);
  m.err = read_text(err);
  return m;
}

std::string describe(const Measured& m) {
  return "exit " + std::to_string(m.exit_code) + ", " + std::to_string(m.seconds) + " s, " +
         std::to_string(m.max_rss_kib / 1024) + " MiB\nstderr: " + m.err.substr(0, 2000);
}

// The contract for every bad input: exit 2, one line naming FILE:LINE: key
// 'KEY', the reason, in under a second and 100 MB.
void expect_located_error(const Measured& m, const std::string& prefix, const std::string& reason) {
  EXPECT_EQ(m.exit_code, 2) << describe(m);
  EXPECT_EQ(m.err.rfind("mathpool: error: " + prefix, 0), 0u) << describe(m);
  EXPECT_NE(m.err.find(reason), std::string::npos) << describe(m);
  EXPECT_EQ(std::count(m.err.begin(), m.err.end(), '\n'), 1) << describe(m);
  EXPECT_LT(m.err.size(), 400u) << "the error line quotes too much\n" << describe(m);
  EXPECT_LT(m.seconds, 1.0) << describe(m);
  EXPECT_LT(m.max_rss_kib, 100 * 1024) << describe(m);
}

// Validates a config with `text` and checks the error contract.
void expect_validate_error(const std::string& text, int line, const std::string& key,
                           const std::string& reason) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml", text);
  const Measured m = run_measured(dir, {"validate", config.string()});
  expect_located_error(m, config.string() + ":" + std::to_string(line) + ": key '" + key + "'", reason);
}

const std::string kEntry = "analyses:\n  - name: e\n    analysis: example.echo\n";
const std::string kHugeNumber = std::string(30000, '7');

// The text of parse_config's ConfigError, or "" when it parses.
std::string parse_error(const std::string& text) {
  try {
    mathpool::parse_config(text, "/configs/run.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// Nine levels of anchors, ten aliases each: 10^10 leaves in about 1 KB.
std::string alias_bomb() {
  std::string yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int level = 1; level <= 9; ++level) {
    const std::string prev = "*a" + std::to_string(level - 1);
    yaml += "a" + std::to_string(level) + ": &a" + std::to_string(level) + " [";
    for (int i = 0; i < 10; ++i) yaml += (i ? ", " : "") + prev;
    yaml += "]\n";
  }
  return yaml;
}

}  // namespace

// ---------------------------------------------------------------- huge scalars

TEST(InputHugeScalar, ParamIsALocatedErrorNotACrash) {
  expect_validate_error(kEntry + "    params: {x: " + kHugeNumber + "}\n", 4, "analyses[0].params.x",
                        "does not fit in 64 bits");
}

TEST(InputHugeScalar, HugeStringParamIsStillAString) {
  const std::string word(30000, 'w');
  const auto config = mathpool::parse_config(kEntry + "    params: {x: " + word + "}\n", "run.yaml");
  EXPECT_EQ(config.analyses[0].params.at("x"), word);
}

TEST(InputHugeScalar, LongFloatReadsAsAFloat) {
  const std::string one = "1." + std::string(30000, '0');
  const auto config = mathpool::parse_config(kEntry + "    params: {x: " + one + "}\n", "run.yaml");
  EXPECT_EQ(config.analyses[0].params.at("x"), 1.0);
}

TEST(InputHugeScalar, PoolWorkers) {
  expect_validate_error("pool:\n  workers: " + kHugeNumber + "\n" + kEntry, 2, "pool.workers",
                        "is out of range");
}

TEST(InputHugeScalar, PoolTaskTimeout) {
  expect_validate_error("pool:\n  task_timeout: " + kHugeNumber + "\n" + kEntry, 2,
                        "pool.task_timeout", "longer than 30 years");
}

TEST(InputHugeScalar, PoolMemoryLimit) {
  expect_validate_error("pool:\n  memory_limit: " + kHugeNumber + "MiB\n" + kEntry, 2,
                        "pool.memory_limit", "larger than any machine");
}

TEST(InputHugeScalar, HugeNonNumbersAreRefusedBriefly) {
  const std::string junk(30000, 'z');
  expect_validate_error("pool:\n  setup_timeout: " + junk + "\n" + kEntry, 2, "pool.setup_timeout",
                        "is not a duration");
  expect_validate_error("pool:\n  retries: " + junk + "\n" + kEntry, 2, "pool.retries",
                        "is not an integer");
}

TEST(InputHugeScalar, TinyAmountsAreTooShortOrTooSmall) {
  const std::string tiny = "0." + std::string(30000, '0') + "1";
  EXPECT_NE(parse_error("pool:\n  task_timeout: " + tiny + "\n" + kEntry).find("shorter than 1ms"),
            std::string::npos);
  EXPECT_NE(parse_error("pool:\n  memory_limit: " + tiny + "GiB\n" + kEntry).find("below 1MiB"),
            std::string::npos);
}

// The scanners that replaced the regular expressions accept the same syntax.
TEST(InputScalars, CoreSchemaTypingIsUnchanged) {
  using mathpool::detail::plain_scalar;
  EXPECT_EQ(plain_scalar("~"), nullptr);
  EXPECT_EQ(plain_scalar(""), nullptr);
  EXPECT_EQ(plain_scalar("NULL"), nullptr);
  EXPECT_EQ(plain_scalar("True"), true);
  EXPECT_EQ(plain_scalar("FALSE"), false);
  EXPECT_EQ(plain_scalar("+5"), 5);
  EXPECT_EQ(plain_scalar("-0"), 0);
  EXPECT_EQ(plain_scalar("0x1F"), 31);
  EXPECT_EQ(plain_scalar("18446744073709551615"), 18446744073709551615ULL);
  EXPECT_EQ(plain_scalar(".5"), 0.5);
  EXPECT_EQ(plain_scalar("1."), 1.0);
  EXPECT_EQ(plain_scalar("+1.5e3"), 1500.0);
  EXPECT_EQ(plain_scalar("1E-2"), 0.01);
  EXPECT_EQ(plain_scalar("-.inf"), -INFINITY);
  EXPECT_EQ(plain_scalar("+.Inf"), INFINITY);
  EXPECT_TRUE(std::isnan(plain_scalar(".NaN").get<double>()));
  for (const char* text : {"0x", "+0x1", "0X1", "1e", "1e+", ".", "-", "+", "1.2.3", "--1", "nan",
                           "-.nan", "inf", "yes", "1_000", " 1", "1 "})
    EXPECT_EQ(plain_scalar(text), text) << text;
  EXPECT_THROW(plain_scalar("-9223372036854775809"), std::invalid_argument);
  EXPECT_THROW(plain_scalar("0x10000000000000000"), std::invalid_argument);
}

TEST(InputScalars, DurationsAndMemoryKeepTheirSyntax) {
  using namespace std::chrono_literals;
  EXPECT_EQ(mathpool::parse_duration("30 s"), 30s);
  EXPECT_EQ(mathpool::parse_duration("2\tm"), 2min);
  EXPECT_EQ(mathpool::parse_memory("2 GiB"), 2LL << 30);
  EXPECT_EQ(mathpool::parse_memory("2097152B"), 2LL << 20);
  for (const std::string bad : {"1.s", ".5s", "1.5.2s", "1s ", " 1s", "1 ms2", "1e3ms"})
    EXPECT_THROW(mathpool::parse_duration(bad), mathpool::Error) << bad;
  for (const std::string bad : {"1.MiB", "2 GiB ", "0x10MiB"})
    EXPECT_THROW(mathpool::parse_memory(bad), mathpool::Error) << bad;
}

// ---------------------------------------------------------------- floats out of range

TEST(InputFloats, OverflowIsALocatedError) {
  expect_validate_error(kEntry + "    params: {x: 1e999}\n", 4, "analyses[0].params.x",
                        "out of range for a 64-bit float");
}

TEST(InputFloats, UnderflowIsALocatedError) {
  expect_validate_error(kEntry + "    params:\n      y: -1e-400\n", 5, "analyses[0].params.y",
                        "out of range for a 64-bit float");
}

TEST(InputFloats, InASweepToo) {
  const std::string m = parse_error(kEntry + "    sweep: {x: [1, 2e400]}\n");
  EXPECT_EQ(m.rfind("/configs/run.yaml:4: key 'analyses[0].sweep.x[1]'", 0), 0u) << m;
}

TEST(InputFloats, SmallButRepresentableNumbersAreFine) {
  const auto config = mathpool::parse_config(kEntry + "    params: {x: 1e-310, y: 0e999, z: 1.7e308}\n",
                                             "run.yaml");
  EXPECT_GT(config.analyses[0].params.at("x").get<double>(), 0.0);
  EXPECT_EQ(config.analyses[0].params.at("y"), 0.0);
}

// ---------------------------------------------------------------- alias bombs and depth

TEST(InputAliases, BombIsRefusedQuicklyInLittleMemory) {
  std::string text = kEntry + "    params:\n";
  std::istringstream bomb(alias_bomb());
  for (std::string line; std::getline(bomb, line);) text += "      " + line + "\n";
  EXPECT_LT(text.size(), 1200u);
  TempDir dir;
  const fs::path config = dir.write("run.yaml", text);
  const Measured m = run_measured(dir, {"validate", config.string()});
  expect_located_error(m, config.string() + ":", "counting each use of an alias");
  EXPECT_NE(m.err.find("key 'analyses[0].params.a"), std::string::npos) << describe(m);
}

TEST(InputAliases, TheBudgetIsPerConfigNotPerValue) {
  // Two entries of 600,000 values each: each fits alone, together they do not.
  std::string text = "x: &l [";
  for (int i = 0; i < 1000; ++i) text += i ? ",0" : "0";
  text += "]\ny: &m [";
  for (int i = 0; i < 600; ++i) text += i ? ",*l" : "*l";
  text += "]\n";
  const std::string entry = "  - name: NAME\n    analysis: example.echo\n    params: {v: *m}\n";
  std::string config = "analyses:\n  - name: anchors\n    analysis: example.echo\n    params:\n";
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) config += "      " + line + "\n";
  const std::string second = std::string(entry).replace(entry.find("NAME"), 4, "second");
  const std::string m = parse_error(config + second);
  EXPECT_NE(m.find("counting each use of an alias"), std::string::npos) << m;
}

TEST(InputAliases, OrdinaryAliasesStillWork) {
  const auto config = mathpool::parse_config(
      kEntry + "    params: {base: &b {n: 3}, again: *b, list: [*b, *b]}\n", "run.yaml");
  EXPECT_EQ(config.analyses[0].params.at("list")[1].at("n"), 3);
}

TEST(InputDepth, DeepParamsAreALocatedError) {
  std::string nested = "1";
  for (int i = 0; i < 70; ++i) nested = "{a: " + nested + "}";
  const std::string m = parse_error(kEntry + "    params: {x: " + nested + "}\n");
  EXPECT_EQ(m.rfind("/configs/run.yaml:4:", 0), 0u) << m;
  EXPECT_NE(m.find("nested deeper than 64 levels"), std::string::npos) << m;
}

TEST(InputDepth, DeepBlockParamsAreALocatedError) {
  std::string text = kEntry + "    params:\n      x:\n";
  for (int i = 0; i < 80; ++i) text += std::string(8 + 2 * i, ' ') + "- \n";
  text.back() = ' ';
  text += "1\n";
  const std::string m = parse_error(text);
  EXPECT_NE(m.find("key 'analyses[0].params.x[0][0]"), std::string::npos) << m;
  EXPECT_NE(m.find("nested deeper than 64 levels"), std::string::npos) << m;
}

TEST(InputDepth, TenThousandLevelsFlowIsALocatedError) {
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  TempDir dir;
  const fs::path config = dir.write("run.yaml", kEntry + "    params:\n      x: " + deep + "\n");
  const Measured m = run_measured(dir, {"validate", config.string()});
  EXPECT_EQ(m.exit_code, 2) << describe(m);
  EXPECT_EQ(m.err.rfind("mathpool: error: " + config.string() + ":5: invalid YAML: nested deeper", 0), 0u)
      << describe(m);
  EXPECT_LT(m.seconds, 1.0) << describe(m);
}

TEST(InputDepth, TenThousandLevelsBlockIsALocatedError) {
  std::string deep;
  for (int i = 0; i < 10000; ++i) deep += "- ";
  TempDir dir;
  const fs::path config = dir.write("run.yaml", kEntry + "    params:\n      x:\n        " + deep + "1\n");
  const Measured m = run_measured(dir, {"validate", config.string()});
  EXPECT_EQ(m.exit_code, 2) << describe(m);
  EXPECT_EQ(m.err.rfind("mathpool: error: " + config.string() + ":6: invalid YAML: nested too deeply", 0), 0u)
      << describe(m);
  EXPECT_LT(m.seconds, 1.0) << describe(m);
}

TEST(InputDepth, BracketsInQuotesAndCommentsDoNotCount) {
  const std::string many(100, '[');
  const auto config = mathpool::parse_config(
      kEntry + "    params: {s: '" + many + "', t: \"" + many + "\"}  # " + many + "\n", "run.yaml");
  EXPECT_EQ(config.analyses[0].params.at("s"), many);
}

// ---------------------------------------------------------------- the command line

TEST(InputCli, ZeroWorkersIsAClearMessage) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml", kEntry);
  for (const std::string bad : {"0", "-3", "many", "1x"}) {
    const Measured m = run_measured(dir, {"run", config.string(), "--workers", bad});
    EXPECT_EQ(m.exit_code, 2) << describe(m);
    EXPECT_NE(m.err.find("--workers: must be a whole number of at least 1, got '" + bad + "'"),
              std::string::npos)
        << describe(m);
    EXPECT_LT(m.err.size(), 200u) << describe(m);
  }
}

TEST(InputCli, HugeWorkersIsAShortMessage) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml", kEntry);
  const Measured m = run_measured(dir, {"run", config.string(), "--workers", kHugeNumber});
  EXPECT_EQ(m.exit_code, 2) << describe(m);
  EXPECT_NE(m.err.find("must be a whole number of at least 1"), std::string::npos) << describe(m);
  EXPECT_LT(m.err.size(), 200u) << describe(m);
}

TEST(InputCli, UnknownCommandIsNamed) {
  TempDir dir;
  const Measured m = run_measured(dir, {"bogus"});
  EXPECT_EQ(m.exit_code, 2) << describe(m);
  EXPECT_EQ(m.err.rfind("mathpool: error: unknown command 'bogus' (commands: run, plugins, describe, validate", 0),
            0u)
      << describe(m);
}

TEST(InputCli, MissingPluginPathNamesFileLineAndKey) {
  TempDir dir;
  const fs::path config =
      dir.write("run.yaml", "plugin_path:\n  - .\n  - no/such/dir\n" + kEntry);
  const Measured m = run_measured(dir, {"validate", config.string()});
  expect_located_error(m, config.string() + ":3: key 'plugin_path'", "no such file or directory");
  EXPECT_NE(m.err.find((dir.path() / "no/such/dir").string()), std::string::npos) << describe(m);
}

TEST(InputCli, DescribeAndValidateTakePluginOptions) {
  TempDir dir;
  const fs::path config = dir.write("run.yaml", kEntry);
  const Measured v = run_measured(dir, {"validate", config.string(), "--plugin-path", EXAMPLE_PLUGIN,
                                        "--allow-insecure-plugins"});
  EXPECT_EQ(v.exit_code, 0) << describe(v);
  const Measured d =
      run_measured(dir, {"describe", "example.echo", "--plugin-path", EXAMPLE_PLUGIN, "--allow-insecure-plugins"});
  EXPECT_EQ(d.exit_code, 0) << describe(d);
}
