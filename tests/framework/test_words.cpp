// Sweeps over lengths (issue 19, item 9): {words: {alphabet, length, prefix,
// suffix}}, with a length that may be an earlier axis's value; exact counts
// without generating; errors at the key's line; the degree 12-16 census.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "common/msgpack_json.hpp"
#include "mathpool/config.hpp"
#include "test_support.hpp"

namespace mathpool {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

const fs::path kFile = "/configs/w.yaml";
const std::string kHead = "analyses:\n  - name: w\n    analysis: example.echo\n";

std::vector<Value> params_of(const std::string& yaml) {
  std::vector<Value> out;
  for (const TaskPlan& task : expand_tasks(parse_config(yaml, kFile))) out.push_back(task.params);
  return out;
}

std::string config_error(const std::string& yaml) {
  try {
    parse_config(yaml, kFile);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for:\n" << yaml;
  return "";
}

TEST(Words, PrefixFreePositionsLastFastestThenSuffix) {
  const auto params = params_of(kHead + "    sweep:\n      c: {words: {alphabet: [0, 1, 2], length: 4, prefix: [9], suffix: [7]}}\n");
  ASSERT_EQ(params.size(), 9u);
  EXPECT_EQ(params[0], (Value{{"c", {9, 0, 0, 7}}}));
  EXPECT_EQ(params[1], (Value{{"c", {9, 0, 1, 7}}}));
  EXPECT_EQ(params[5], (Value{{"c", {9, 1, 2, 7}}}));
  EXPECT_EQ(params[8], (Value{{"c", {9, 2, 2, 7}}}));
  // Prefix and suffix are optional; an alphabet may be a range; length 0 is one empty word.
  EXPECT_EQ(params_of(kHead + "    sweep: {c: {words: {alphabet: {range: [5, 7]}, length: 2}}}\n"),
            (std::vector<Value>{{{"c", {5, 5}}}, {{"c", {5, 6}}}, {{"c", {6, 5}}}, {{"c", {6, 6}}}}));
  EXPECT_EQ(params_of(kHead + "    sweep: {c: {words: {alphabet: [0], length: 0}}}\n"),
            (std::vector<Value>{{{"c", Value::array()}}}));
}

// The order a user would write as nested loops, the last key innermost.
TEST(Words, ALengthFromAnEarlierAxisNestsAsLoopsWould) {
  const auto params = params_of(kHead + "    labels: [d]\n    sweep:\n      d: {range: [1, 4]}\n"
                                        "      x: [a, b]\n"
                                        "      c: {words: {alphabet: [0, 1], length: d, prefix: [1]}}\n"
                                        "      y: [true, false]\n");
  std::vector<Value> expected;
  for (int d = 1; d < 4; ++d)
    for (const char* x : {"a", "b"})
      for (int w = 0; w < 1 << (d - 1); ++w)
        for (bool y : {true, false}) {
          Value c = Value::array();
          c.push_back(1);
          for (int i = d - 2; i >= 0; --i) c.push_back((w >> i) & 1);
          expected.push_back({{"x", x}, {"c", c}, {"y", y}});
        }
  EXPECT_EQ(params, expected);  // d is a label, not a parameter
}

TEST(Words, CountsAreExactWithoutGenerating) {
  const RunConfig config =
      parse_config(kHead + "    labels: [n]\n    sweep:\n      n: [3, 60, 1]\n      f: [2, 3]\n"
                           "      c: {words: {alphabet: [0, 1], length: n}}\n",
                   kFile);
  const AnalysisEntry& entry = config.analyses[0];
  EXPECT_EQ(entry.parameter_sets(), 2 * ((1ull << 3) + (1ull << 60) + 2));
  std::string params, labels;
  entry.encode_task(2 * 8 + 2 * (1ull << 60) + 3, params, labels);  // n = 1, f = 3, c = [1]
  EXPECT_EQ(detail::msgpack_to_value(labels), (Value{{"n", 1}}));
  // `validate` counts it at once.
  TempDir dir;
  const fs::path file = dir.write("v.yaml", fmt::format("plugin_path: [\"{}\"]\n", EXAMPLE_PLUGIN) + kHead +
                                                "    labels: [degree]\n    sweep:\n      degree: {range: [1, 64]}\n"
                                                "      c: {words: {alphabet: [0, 1], length: degree, prefix: [1]}}\n");
  const auto r = test::run_mathpool({"validate", file.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ok: 1 analyses, 9223372036854775807 tasks"), std::string::npos) << r.out;  // 2^63 - 1
}

TEST(Words, MistakesAreLocatedAtTheirKey) {
  const std::string sweep = kHead + "    sweep:\n      d: [2, 3]\n      p: {product: [[1]]}\n      c:\n        words:\n";
  const std::string at = kFile.string() + ":";
  auto expect = [&](const std::string& words, int line, const std::string& key, const std::string& why) {
    const std::string m = config_error(sweep + words);
    EXPECT_EQ(m.rfind(at + std::to_string(line) + ": key 'analyses[0].sweep.c.words" + key + "'", 0), 0u) << m;
    EXPECT_NE(m.find(why), std::string::npos) << m;
  };
  expect("          alphabet: [0, 1]\n          length: e\n", 10, ".length", "'e' is neither an integer nor an earlier key");
  expect("          alphabet: [0, 1]\n          length: p\n", 10, ".length", "p = [1] is not a length");
  expect("          alphabet: [0, 1]\n          length: d\n          prefix: [1, 1, 1]\n", 10, ".length",
         "d = 2 is shorter than the prefix and suffix together (3)");
  expect("          alphabet: []\n          length: 2\n", 9, ".alphabet", "at least one value");
  expect("          alphabet: [0]\n          length: -1\n", 10, ".length", "not a length");
  expect("          alphabet: [0]\n", 9, ".length", "is required");
  expect("          alphabet: [0]\n          length: 1\n          extra: 1\n", 11, ".extra", "unknown key");
  // Lengths from several keys: their combinations are kept few (tasks are found by summing over them).
  const std::string many = config_error(kHead + "    sweep:\n      a: {range: [0, 100]}\n      b: {range: [0, 100]}\n"
                                                "      x: {words: {alphabet: [0], length: a}}\n"
                                                "      y: {words: {alphabet: [0], length: b}}\n");
  EXPECT_NE(many.find(":8: key 'analyses[0].sweep.y.words.length': the sweep keys that give lengths have 10000 "
                      "combinations"),
            std::string::npos)
      << many;
  // A length axis must come first: a later key is not "earlier".
  const std::string m = config_error(kHead + "    sweep:\n      c: {words: {alphabet: [0], length: d}}\n      d: [1]\n");
  EXPECT_NE(m.find(":5: key 'analyses[0].sweep.c.words.length'"), std::string::npos) << m;
}

// The degree 12-16 census over GF(2), in one entry of configs/.
TEST(Census, Degrees12To16FindThePrimitiveCounts) {
  TempDir dir;
  const fs::path out = dir.path() / "census.jsonl";
  const auto r = test::run_mathpool(
      {"run", std::string(SOURCE_DIR) + "/configs/census12to16.yaml", "-o", out.string(), "--workers", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::int64_t, int> primitive, registers;
  for (const Value& record : test::read_records(out)) {
    const std::int64_t degree = record.at("labels").at("degree").get<std::int64_t>();
    EXPECT_EQ(record.at("params").at("coefficients").size(), std::size_t(degree));
    EXPECT_FALSE(record.at("params").contains("degree"));
    ++registers[degree];
    if (record.at("result").at("is_primitive").get<bool>()) ++primitive[degree];
  }
  EXPECT_EQ(registers, (std::map<std::int64_t, int>{{12, 2048}, {13, 4096}, {14, 8192}, {15, 16384}, {16, 32768}}));
  EXPECT_EQ(primitive, (std::map<std::int64_t, int>{{12, 144}, {13, 630}, {14, 756}, {15, 1800}, {16, 2048}}));
}

}  // namespace
}  // namespace mathpool
