// Rows and labels (issue 19, item 3 and 12): RFC 4180 CSV files (quoted
// cells, embedded commas, quotes and newlines), YAML flow values in cells, a
// byte-order mark, `labels:` on rows columns and sweep keys, errors at the
// key's own line, and a CSV sweep's host memory.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "common/msgpack_json.hpp"
#include "mathpool/config.hpp"
#include "test_support.hpp"

namespace mathpool {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

const std::string kPlugins = fmt::format("plugin_path: [\"{}\"]\n", EXAMPLE_PLUGIN);

// Parameters and labels of each task of the config's first entry.
std::vector<std::pair<Value, Value>> tasks_of(const RunConfig& config) {
  std::vector<std::pair<Value, Value>> out;
  const AnalysisEntry& entry = config.analyses.at(0);
  for (std::uint64_t t = 0; t < entry.parameter_sets(); ++t) {
    std::string params, labels;
    entry.encode_task(t, params, labels);
    out.emplace_back(detail::msgpack_to_value(params), labels.empty() ? Value() : detail::msgpack_to_value(labels));
  }
  return out;
}

std::string config_error(const fs::path& file) {
  try {
    load_config(file);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for " << file;
  return "";
}

TEST(RowsCsv, QuotedCellsHoldCommasQuotesNewlinesAndLists) {
  TempDir dir;
  dir.write("regs.csv",
            "name,coefficients,note\n"
            "first,\"[1,1,0,1]\",\"a, \"\"quoted\"\" note\"\n"
            "second, \"[1, 0, 1]\" ,\"two\nlines\"\n"
            "third,[1],\"{a: 1, b: [x, 2]}\"\n");
  const fs::path file = dir.write("run.yaml", "analyses:\n  - name: r\n    analysis: example.echo\n"
                                              "    labels: [name, note]\n    rows: {csv: regs.csv}\n");
  const auto tasks = tasks_of(load_config(file));
  ASSERT_EQ(tasks.size(), 3u);
  EXPECT_EQ(tasks[0].first, (Value{{"coefficients", {1, 1, 0, 1}}}));
  EXPECT_EQ(tasks[0].second, (Value{{"name", "first"}, {"note", "a, \"quoted\" note"}}));
  EXPECT_EQ(tasks[1].first, (Value{{"coefficients", {1, 0, 1}}}));
  EXPECT_EQ(tasks[1].second, (Value{{"name", "second"}, {"note", "two\nlines"}}));
  // A flow map cell is typed as YAML types it.
  EXPECT_EQ(tasks[2].second.at("note"), (Value{{"a", 1}, {"b", {"x", 2}}}));
}

TEST(RowsCsv, AByteOrderMarkIsSkipped) {
  TempDir dir;
  dir.write("bom.csv", "\xEF\xBB\xBFx,y\n1,2\n3,4\n");
  const fs::path column = dir.write("c.yaml", "analyses:\n  - name: c\n    analysis: example.echo\n"
                                              "    sweep: {x: {csv: bom.csv, column: x}}\n");
  const auto tasks = tasks_of(load_config(column));
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[1].first, (Value{{"x", 3}}));
  const fs::path rows = dir.write("r.yaml", "analyses:\n  - name: r\n    analysis: example.echo\n"
                                            "    rows: {csv: bom.csv}\n");
  EXPECT_EQ(tasks_of(load_config(rows))[0].first, (Value{{"x", 1}, {"y", 2}}));
  // lfsr-seq's format too.
  dir.write("ints.csv", "\xEF\xBB\xBF" "1,0,1\n");
  const fs::path ints = dir.write("i.yaml", "analyses:\n  - name: i\n    analysis: example.echo\n"
                                            "    sweep: {c: {csv: ints.csv}}\n");
  EXPECT_EQ(tasks_of(load_config(ints))[0].first, (Value{{"c", {1, 0, 1}}}));
}

TEST(RowsCsv, BadQuotingIsLocated) {
  TempDir dir;
  dir.write("open.csv", "x,y\n1,2\n3,\"[1,\n2\n");
  dir.write("after.csv", "x,y\n1,\"2\"3\n");
  for (const auto& [csv, line, why] : {std::tuple<std::string, int, std::string>{"open.csv", 3, "not closed"},
                                       {"after.csv", 2, "text after the closing quote"}}) {
    const fs::path file = dir.write("run.yaml", "analyses:\n  - name: r\n    analysis: example.echo\n"
                                                "    rows: {csv: " + csv + "}\n");
    const std::string m = config_error(file);
    EXPECT_NE(m.find(file.string() + ":4: key 'analyses[0].rows.csv'"), std::string::npos) << m;
    EXPECT_NE(m.find(csv + ":" + std::to_string(line) + ": "), std::string::npos) << m;
    EXPECT_NE(m.find(why), std::string::npos) << m;
  }
}

TEST(Labels, RowsColumnsAndSweepKeysGoUnderLabelsInEachRecord) {
  TempDir dir;
  dir.write("regs.csv", "label,coefficients\n\"x^3 + x + 1\",\"[1,1,0]\"\nsecond,\"[1,0,1]\"\n");
  const fs::path config =
      dir.write("run.yaml", kPlugins + "pool: {workers: 2}\nanalyses:\n  - name: r\n    analysis: example.echo\n"
                                       "    labels: [label, batch]\n    rows: {csv: regs.csv}\n"
                                       "    sweep: {batch: [7, 8]}\n");
  const auto r = test::run_mathpool({"run", config.string(), "-o", (dir.path() / "out.jsonl").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string text = test::read_text(dir.path() / "out.jsonl");
  const auto records = test::parse_records(text);
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[1].at("params"), (Value{{"coefficients", {1, 1, 0}}}));
  EXPECT_EQ(records[1].at("labels"), (Value{{"label", "x^3 + x + 1"}, {"batch", 8}}));
  EXPECT_EQ(records[1].at("result"), records[1].at("params"));  // the analysis never saw a label
  EXPECT_EQ(records[2].at("labels"), (Value{{"label", "second"}, {"batch", 7}}));
  // Right after params.
  EXPECT_NE(text.find("\"params\":{\"coefficients\":[1,1,0]},\"labels\":{\"label\":\"x^3 + x + 1\",\"batch\":7},"
                      "\"status\":\"ok\""),
            std::string::npos)
      << text;
  // Without labels, a column is a parameter (example.sum refuses it by name).
  const fs::path plain = dir.write("p.yaml", kPlugins + "analyses:\n  - name: r\n    analysis: example.sum\n"
                                                        "    params: {values: [1]}\n    rows: {csv: regs.csv}\n");
  const auto refused = test::run_mathpool({"validate", plain.string()});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("unknown parameter 'label'"), std::string::npos) << refused.err;
}

// A labelled run's records hold "labels" between params and status: --resume
// refused every one of them ("does not belong to this config"), so a killed
// labelled run could not be resumed. Labels are checked like params.
TEST(Labels, ACutLabelledRunResumesToTheCleanRecordsAndOtherLabelsAreRefused) {
  TempDir dir;
  dir.write("regs.csv", "label,coefficients\n\"x^3 + x + 1\",\"[1,1,0]\"\nsecond,\"[1,0,1]\"\n");
  const fs::path config =
      dir.write("run.yaml", kPlugins + "pool: {workers: 2}\nanalyses:\n  - name: r\n    analysis: example.echo\n"
                                       "    labels: [label, batch]\n    rows: {csv: regs.csv}\n"
                                       "    sweep: {batch: [7, 8]}\n    repeat: 2\n");
  const fs::path out = dir.path() / "out.jsonl";
  for (const std::vector<std::string>& fields : {std::vector<std::string>{}, {"--fields", "labels,result"}}) {
    std::vector<std::string> args = {"run", config.string(), "-o", out.string(), "-q", "--force"};
    args.insert(args.end(), fields.begin(), fields.end());
    ASSERT_EQ(test::run_mathpool(args).exit_code, 0);
    const auto clean = test::parse_records(test::read_text(out));
    ASSERT_EQ(clean.size(), 8u);
    const std::string text = test::read_text(out);
    std::ofstream(out, std::ios::trunc) << text.substr(0, text.find('\n', text.find('\n') + 1) + 1);  // two kept
    args = {"run", config.string(), "-o", out.string(), "--resume"};
    args.insert(args.end(), fields.begin(), fields.end());
    const auto r = test::run_mathpool(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto resumed = test::parse_records(test::read_text(out));
    ASSERT_EQ(resumed.size(), clean.size());
    for (std::size_t i = 0; i < clean.size(); ++i) EXPECT_EQ(resumed[i].at("labels"), clean[i].at("labels")) << i;
  }
  // A record whose labels are not this config's task's.
  std::string text = test::read_text(out);
  text.replace(text.find("\"batch\":7"), 9, "\"batch\":9");
  std::ofstream(out, std::ios::trunc) << text;
  const auto refused = test::run_mathpool({"run", config.string(), "-o", out.string(), "--resume"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find(out.string() + ":1: the record of run 'r' task 0 repeat 0 has other labels than this "
                                            "config's task"),
            std::string::npos)
      << refused.err;
}

TEST(Labels, AnUnknownLabelIsAConfigErrorAtItsLine) {
  TempDir dir;
  dir.write("regs.csv", "label,c\na,1\n");
  const fs::path file = dir.write("run.yaml", "analyses:\n  - name: r\n    analysis: example.echo\n"
                                              "    params: {field: 2}\n"
                                              "    labels:\n      - label\n      - field\n"
                                              "    rows: {csv: regs.csv}\n");
  const std::string m = config_error(file);
  EXPECT_EQ(m.rfind(file.string() + ":7: key 'analyses[0].labels[1]': unknown label 'field'", 0), 0u) << m;
}

// Config errors name the key's own line, not the entry's.
TEST(ConfigLines, ErrorsFoundAgainstThePluginNameTheKeysLine) {
  TempDir dir;
  const fs::path typo = dir.write("t.yaml", kPlugins + "analyses:\n  - name: a\n    analysis: example.ech\n");
  auto r = test::run_mathpool({"validate", typo.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("mathpool: error: " + typo.string() + ":4: key 'analyses[0].analysis': unknown analysis", 0),
            0u)
      << r.err;
  const fs::path sweep = dir.write("s.yaml", kPlugins + "analyses:\n  - name: s\n    analysis: example.sum\n"
                                                        "    params: {values: [1]}\n    sweep:\n"
                                                        "      offset: [a, b]\n");
  r = test::run_mathpool({"validate", sweep.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("mathpool: error: " + sweep.string() + ":7: key 'analyses[0].sweep.offset'", 0), 0u) << r.err;
  const fs::path rows_file = dir.write("r.csv", "offset\nx\n");
  (void)rows_file;
  const fs::path rows = dir.write("r.yaml", kPlugins + "analyses:\n  - name: s\n    analysis: example.sum\n"
                                                       "    params: {values: [1]}\n    rows:\n      csv: r.csv\n");
  r = test::run_mathpool({"validate", rows.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("mathpool: error: " + rows.string() + ":7: key 'analyses[0].rows.offset'", 0), 0u) << r.err;
}

// Peak resident memory (VmHWM) of a running process, 0 once it is gone.
long peak_kb(int pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

long validate_peak_kb(const fs::path& config) {
  const int pid = test::start_mathpool({"validate", config.string()}, config.parent_path() / "log.txt");
  long peak = 0;
  for (;;) {  // VmHWM only grows: the last reading is the peak
    peak = std::max(peak, peak_kb(pid));
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << test::read_text(config.parent_path() / "log.txt");
      return peak;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// A 96 MB integer CSV once took the host to 1 GB; a sweep's CSV now costs at
// most about twice its size (here 32 MB, lfsr-seq's format and a rows file).
TEST(CsvMemory, ACsvSweepCostsAtMostTwiceTheFile) {
  TempDir dir;
  std::string text;
  std::uint64_t seed = 1;
  while (text.size() < (32u << 20)) {
    for (int i = 0; i < 16; ++i) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      text += (seed >> 40) % 2 ? '1' : '0';
      text += i == 15 ? '\n' : ',';
    }
  }
  dir.write("big.csv", text);
  dir.write("rows.csv", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p\n" + text);
  const long file_kb = long(text.size() / 1024);
  text = std::string();
  const fs::path sweep = dir.write("s.yaml", kPlugins + "analyses:\n  - name: s\n    analysis: example.echo\n"
                                                        "    sweep: {c: {csv: big.csv}}\n");
  const fs::path rows = dir.write("r.yaml", kPlugins + "analyses:\n  - name: r\n    analysis: example.echo\n"
                                                       "    rows: {csv: rows.csv}\n");
  for (const fs::path& config : {sweep, rows}) {
    const long peak = validate_peak_kb(config);
    std::printf("[ memory   ] %s: file %ld KB, host peak %ld KB\n", config.filename().c_str(), file_kb, peak);
    EXPECT_LT(peak, 2 * file_kb) << config;
  }
}

}  // namespace
}  // namespace mathpool
