// An analysis's check (Analysis::check) runs in a worker before any task:
// `validate` reports every problem it finds at the key's own line, and `run`
// refuses (exit 2) before starting a task (issue 19, item 5).
#include <gtest/gtest.h>

#include <filesystem>

#include "test_support.hpp"

namespace mathpool {
namespace {

test::CommandResult command(const test::TempDir& dir, const char* verb, const std::string& yaml,
                            std::vector<std::string> more = {}) {
  const auto config = dir.write("c.yaml", yaml);
  std::vector<std::string> args{verb, config.string()};
  args.insert(args.end(), more.begin(), more.end());
  return test::run_mathpool(args);
}

std::size_t error_lines(const std::string& err) {
  std::size_t lines = 0;
  for (std::size_t at = 0; (at = err.find("mathpool: error: ", at)) != std::string::npos; ++at) ++lines;
  return lines;
}

const char* kBad =
    "analyses:\n"
    "  - name: six\n"
    "    analysis: lfsr.polynomial\n"
    "    params:\n"
    "      field: 6\n"
    "      coefficients: [1, 0, 1]\n"
    "  - name: two\n"
    "    analysis: lfsr.cycles\n"
    "    params: {field: 2}\n"
    "    sweep:\n"
    "      coefficients: [[1, 1], [1, 0], [1, 2]]\n";

TEST(Check, ValidateReportsEveryProblemAtItsKeysLine) {
  test::TempDir dir;
  const auto r = command(dir, "validate", kBad);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("c.yaml:5: key 'analyses[0].params.field'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("prime power"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("c.yaml:11: key 'analyses[1].sweep.coefficients'"), std::string::npos) << r.err;
  // One line each, every line an error line.
  EXPECT_EQ(error_lines(r.err), 2u) << r.err;
}

TEST(Check, RunRefusesBeforeAnyTask) {
  test::TempDir dir;
  const auto out = dir.path() / "out.jsonl";
  const auto r = command(dir, "run", kBad, {"-o", out.string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("key 'analyses[1].sweep.coefficients'"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out) && std::filesystem::file_size(out) > 0) << "a task ran";
}

TEST(Check, TheEndsOfALargeSweepAreChecked) {
  test::TempDir dir;
  // 3^14 registers over GF(2); the last has coefficient 2 everywhere.
  const auto r = command(dir, "validate",
                         "analyses:\n"
                         "  - name: w\n"
                         "    analysis: lfsr.polynomial\n"
                         "    params: {field: 2}\n"
                         "    sweep:\n"
                         "      coefficients: {words: {alphabet: [0, 1, 2], length: 14, prefix: [1]}}\n");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.err.find("c.yaml:6: key 'analyses[0].sweep.coefficients'"), std::string::npos) << r.err;
}

TEST(Check, AGoodConfigStillValidates) {
  test::TempDir dir;
  const auto r = command(dir, "validate",
                         "analyses:\n"
                         "  - {name: p, analysis: lfsr.polynomial, params: {field: 4, coefficients: [1, 3, 2]}}\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// The sets of every entry of an analysis go to its check together (one round
// trip per analysis): each problem still names its own entry, and an entry's
// problem is reported once however many other entries share it.
TEST(Check, EntriesOfOneAnalysisAreCheckedTogetherAndBlamedApart) {
  test::TempDir dir;
  const auto r = command(dir, "validate",
                         "analyses:\n"
                         "  - {name: a, analysis: lfsr.cycles, params: {field: 2, coefficients: [1, 1]}}\n"
                         "  - {name: b, analysis: lfsr.polynomial, params: {field: 6, coefficients: [1, 1]}}\n"
                         "  - name: c\n"
                         "    analysis: lfsr.cycles\n"
                         "    params: {field: 2}\n"
                         "    sweep: {coefficients: [[1, 2], [1, 0], [1, 2]]}\n"
                         "  - {name: d, analysis: lfsr.cycles, params: {field: 6, coefficients: [1, 1]}}\n");
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_EQ(r.err.find("analyses[0]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("c.yaml:3: key 'analyses[1].params.field'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("c.yaml:7: key 'analyses[2].sweep.coefficients'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("c.yaml:8: key 'analyses[3].params.field'"), std::string::npos) << r.err;
  EXPECT_EQ(error_lines(r.err), 3u) << r.err;
}

}  // namespace
}  // namespace mathpool
