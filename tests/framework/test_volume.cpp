// Volume: sweep forms and their order, task streams, resume against foreign
// files, and a host whose memory does not grow with the number of tasks.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "mathpool/config.hpp"
#include "mathpool/run.hpp"
#include "host/pool/stream_core.hpp"
#include "tasks/run_entry.hpp"
#include "test_support.hpp"

namespace mathpool {
namespace {

using test::read_records;
using test::run_mathpool;
using test::TempDir;
namespace fs = std::filesystem;

const std::string kPlugins = fmt::format("plugin_path: [\"{}\"]\n", EXAMPLE_PLUGIN);

std::vector<Value> params_of(const RunConfig& config) {
  std::vector<Value> out;
  for (const TaskPlan& t : expand_tasks(config)) out.push_back(t.params);
  return out;
}

RunConfig sweep_config(const std::string& sweep) {
  return parse_config("analyses:\n  - name: s\n    analysis: example.echo\n    sweep:\n" + sweep, "s.yaml");
}

std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml, "s.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "accepted";
}

// ------------------------------------------------------------ sweep forms

TEST(SweepRange, LikePythonRange) {
  EXPECT_EQ(params_of(sweep_config("      x: {range: [2, 6]}\n")),
            (std::vector<Value>{{{"x", 2}}, {{"x", 3}}, {{"x", 4}}, {{"x", 5}}}));
  EXPECT_EQ(params_of(sweep_config("      x: {range: [0, 10, 4]}\n")),
            (std::vector<Value>{{{"x", 0}}, {{"x", 4}}, {{"x", 8}}}));
  EXPECT_EQ(params_of(sweep_config("      x: {range: [3, -3, -2]}\n")),
            (std::vector<Value>{{{"x", 3}}, {{"x", 1}}, {{"x", -1}}}));
  // Python: list(range(-9223372036854775808, 9223372036854775807, 9223372036854775807)) has 3 items.
  const RunConfig wide = sweep_config("      x: {range: [-9223372036854775808, 9223372036854775807, 9223372036854775807]}\n");
  EXPECT_EQ(wide.analyses[0].task_count(), 3u);
  EXPECT_EQ(wide.analyses[0].sweep[0].value(2), 9223372036854775806LL);
}

TEST(SweepRange, StepZeroEmptyAndNonIntegersAreRefusedWithTheirKey) {
  const std::string head = "analyses:\n  - name: s\n    analysis: example.echo\n    sweep:\n";
  EXPECT_NE(error_of(head + "      x: {range: [0, 5, 0]}\n").find("s.yaml:5: key 'analyses[0].sweep.x.range[2]': the step must not be 0"),
            std::string::npos);
  EXPECT_NE(error_of(head + "      x: {range: [5, 5]}\n").find("key 'analyses[0].sweep.x.range': range [5, 5, 1] is empty"),
            std::string::npos);
  EXPECT_NE(error_of(head + "      x: {range: [0, 5, -1]}\n").find("is empty"), std::string::npos);
  EXPECT_NE(error_of(head + "      x: {range: [0, 1.5]}\n").find("key 'analyses[0].sweep.x.range[1]': '1.5' is not a 64-bit integer"),
            std::string::npos);
  EXPECT_NE(error_of(head + "      x: {range: [1]}\n").find("expected [START, STOP] or [START, STOP, STEP]"),
            std::string::npos);
  EXPECT_NE(error_of(head + "      x: {range: [0, 2], csv: f.csv}\n").find("key 'analyses[0].sweep.x': expected one of"),
            std::string::npos);
}

TEST(SweepProduct, LastPositionFastestWithListsAndRanges) {
  const RunConfig config = sweep_config("      c: {product: [[1], {range: [0, 2]}, [a, b]]}\n");
  EXPECT_EQ(params_of(config), (std::vector<Value>{{{"c", {1, 0, "a"}}},
                                                   {{"c", {1, 0, "b"}}},
                                                   {{"c", {1, 1, "a"}}},
                                                   {{"c", {1, 1, "b"}}}}));
}

TEST(SweepProduct, EveryDegreeSixteenRegisterWithAnchors) {
  const RunConfig config = parse_config(
      "anchors: {bit: &bit [0, 1]}\n"
      "analyses:\n  - name: r\n    analysis: lfsr.cycles\n    params: {field: 2}\n    sweep:\n"
      "      coefficients: {product: [[1], *bit, *bit, *bit, *bit, *bit, *bit, *bit,\n"
      "                                     *bit, *bit, *bit, *bit, *bit, *bit, *bit, *bit]}\n",
      "r.yaml");
  ASSERT_EQ(config.analyses[0].task_count(), 32768u);
  const SweepAxis& axis = config.analyses[0].sweep[0];
  EXPECT_EQ(axis.value(0), (Value{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(axis.value(1), (Value{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(axis.value(32767), (Value{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
}

TEST(SweepProduct, EmptyPositionsAreRefused) {
  const std::string head = "analyses:\n  - name: s\n    analysis: example.echo\n    sweep:\n";
  EXPECT_NE(error_of(head + "      c: {product: []}\n").find("key 'analyses[0].sweep.c.product'"), std::string::npos);
  EXPECT_NE(error_of(head + "      c: {product: [[1], []]}\n").find("key 'analyses[0].sweep.c.product[1]': a sweep needs at least one value"),
            std::string::npos);
  EXPECT_NE(error_of(head + "      c: {product: [[1], {range: [3, 3]}]}\n").find("is empty"), std::string::npos);
  EXPECT_NE(error_of(head + "      c: {product: [7]}\n").find("key 'analyses[0].sweep.c.product[0]': expected a list"),
            std::string::npos);
}

TEST(SweepCsv, ColumnByHeaderTypedAsYamlScalars) {
  TempDir dir;
  dir.write("points.csv", "# a comment\nn, name, weight, flag\n10, ten, 0.5, true\n-3, minus three, 2, false\n");
  const fs::path config = dir.write("c.yaml",
                                    "analyses:\n  - name: s\n    analysis: example.echo\n    sweep:\n"
                                    "      n: {csv: points.csv, column: n}\n      w: {csv: points.csv, column: weight}\n");
  const RunConfig c = load_config(config);
  EXPECT_EQ(params_of(c), (std::vector<Value>{{{"n", 10}, {"w", 0.5}},
                                              {{"n", 10}, {"w", 2}},
                                              {{"n", -3}, {"w", 0.5}},
                                              {{"n", -3}, {"w", 2}}}));
  const fs::path bad = dir.write("bad.yaml",
                                 "analyses:\n  - name: s\n    analysis: example.echo\n    sweep:\n"
                                 "      n: {csv: points.csv, column: nope}\n");
  try {
    load_config(bad);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(":5: key 'analyses[0].sweep.n.column': no column 'nope'"), std::string::npos)
        << e.what();
  }
}

TEST(SweepRows, EachRowIsATaskAndRowsAreTheOutermostFactor) {
  TempDir dir;
  dir.write("rows.csv", "field, coefficients_count\n2, 4\n3, 5\n");
  const fs::path config = dir.write("c.yaml",
                                    "analyses:\n  - name: s\n    analysis: example.echo\n    params: {k: 1}\n"
                                    "    rows: {csv: rows.csv}\n    sweep: {m: [a, b]}\n");
  EXPECT_EQ(params_of(load_config(config)),
            (std::vector<Value>{{{"k", 1}, {"field", 2}, {"coefficients_count", 4}, {"m", "a"}},
                                {{"k", 1}, {"field", 2}, {"coefficients_count", 4}, {"m", "b"}},
                                {{"k", 1}, {"field", 3}, {"coefficients_count", 5}, {"m", "a"}},
                                {{"k", 1}, {"field", 3}, {"coefficients_count", 5}, {"m", "b"}}}));
}

TEST(SweepRows, ErrorsNameTheFileLineAndKey) {
  TempDir dir;
  dir.write("short.csv", "a, b\n1, 2\n3\n");
  dir.write("dup.csv", "k\n1\n");
  const std::string head = "analyses:\n  - name: s\n    analysis: example.echo\n";
  try {
    load_config(dir.write("c1.yaml", head + "    rows: {csv: short.csv}\n"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(":4: key 'analyses[0].rows.csv':"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("short.csv:3: 1 cells, but the header names 2 columns"), std::string::npos)
        << e.what();
  }
  try {
    load_config(dir.write("c2.yaml", head + "    params: {k: 0}\n    rows: {csv: dup.csv}\n"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("column 'k' is also set in params"), std::string::npos) << e.what();
  }
}

TEST(CliValidate, PrintsEachEntrysTaskCountWithoutGeneratingThem) {
  TempDir dir;
  // 10^15 tasks: validating must not try to list them.
  const fs::path config = dir.write("c.yaml", kPlugins +
                                                  "analyses:\n  - name: big\n    analysis: example.echo\n"
                                                  "    repeat: 1000\n    sweep: {x: {range: [0, 1000000000000]}}\n"
                                                  "  - name: small\n    analysis: example.echo\n    sweep: {y: [1, 2, 3]}\n");
  const auto r = run_mathpool({"validate", config.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("1000000000000003 tasks"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("big: 1000000000000000 tasks (1000000000000 parameter sets x 1000 repeats)"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("small: 3 tasks"), std::string::npos) << r.out;
}

// ------------------------------------------------------------ task streams

TEST(Stream, ResultsComeInPushOrderWithABoundedWindow) {
  Pool pool(test::test_pool_options(2));
  TaskStream stream(pool, 8);
  EXPECT_EQ(stream.window(), 8u);
  long next_expected = 0;
  for (long x = 0; x < 5000; ++x) {
    if (stream.full()) {
      auto r = stream.next();
      ASSERT_TRUE(r && r->ok());
      ASSERT_EQ(r->result.at("x"), next_expected++);
    }
    ASSERT_LE(stream.in_flight(), 8u);
    stream.push("example.echo", {{"x", x}});
  }
  while (auto r = stream.next()) ASSERT_EQ(r->result.at("x"), next_expected++);
  EXPECT_EQ(next_expected, 5000);
}

// A run's stream takes the ok records of consecutive tasks joined into one
// result (RawResult::count), in exactly the room a recycled result keeps;
// a failed task's record comes alone. Every line is still its own task's
// (the host's check passes), in task order, each task once, through a window
// that wraps round many times.
TEST(Stream, OkRecordsOfConsecutiveTasksComeJoinedInTaskOrderAndFailuresAlone) {
  const RunConfig config = parse_config(
      "analyses:\n  - name: j\n    analysis: testkit.echo\n    sweep:\n      fault: ['', throw, crash]\n"
      "      x: {range: [0, 3000]}\n",
      "/configs/j.yaml");
  const detail::RunEntry entry(1, config.analyses[0], {});
  ASSERT_EQ(entry.tasks(), 9000u);
  // Only these fail: the throw at 3000 + 100 k (its worker's record), one crash (the host's).
  const auto fails = [](std::uint64_t i) { return (i >= 3000 && i < 6000 && i % 100 == 0) || i == 6500; };
  const auto skipped = [](std::uint64_t i) { return i >= 3000 && i < 9000 && !(i < 6000 && i % 100 == 0) && i != 6500; };
  PoolOptions options = test::test_pool_options(2);
  options.retries = 0;
  Pool pool(options);
  TaskStream stream(pool, 512);
  TaskStream::Core& core = detail::StreamAccess::core(stream);
  core.joins_lines = true;
  std::vector<std::uint64_t> order;  // the tasks pushed, in push order
  for (std::uint64_t i = 0; i < entry.tasks(); ++i)
    if (!skipped(i) || fails(i)) order.push_back(i);
  std::size_t pushed = 0, next = 0, joined = 0, failed = 0, longest = 0;
  detail::RawResult result;
  while (next < order.size()) {
    while (pushed < order.size() && !core.full()) core.push(entry, order[pushed++]);
    core.take_into(result);
    ASSERT_GE(result.count, 1u);
    ASSERT_LE(next + result.count, order.size());
    if (!result.line) {  // the crash: no worker wrote its record
      EXPECT_EQ(order[next], 6500u);
      EXPECT_EQ(result.count, 1u);
      ASSERT_TRUE(result.error);
      EXPECT_EQ(result.error->kind, ErrorKind::crashed);
      ++failed, ++next;
      continue;
    }
    std::vector<std::string_view> lines;
    for (std::string_view rest = result.payload;;) {
      const std::size_t end = rest.find('\n');
      lines.push_back(rest.substr(0, end));
      if (end == std::string_view::npos) break;
      rest.remove_prefix(end + 1);
    }
    ASSERT_EQ(lines.size(), result.count) << "task " << order[next];
    for (std::size_t k = 0; k < lines.size(); ++k) {
      ASSERT_NO_THROW(entry.check_record(order[next + k], lines[k])) << lines[k];
      EXPECT_EQ(lines[k].find("\"status\":\"ok\"") != std::string_view::npos, !fails(order[next + k])) << lines[k];
    }
    if (result.error) {
      ++failed;
      EXPECT_EQ(result.count, 1u);
      EXPECT_TRUE(fails(order[next]));
    }
    if (result.count > 1) {
      ++joined;
      EXPECT_LE(result.payload.size(), detail::kJoinedRoom);
      EXPECT_LE(result.payload.capacity(), 2 * detail::kJoinedRoom);  // grown with its lines
      longest = std::max(longest, result.payload.size());
    }
    next += result.count;
  }
  EXPECT_EQ(failed, 31u);
  EXPECT_GT(joined, 0u);
  EXPECT_GT(longest, detail::kJoinedRoom / 2) << "no join came near the limit";
}

TEST(Stream, MapStreamFromAGeneratorWithFaultsBlamesExactlyTheFaultyTasks) {
  PoolOptions options = test::test_pool_options(2);
  options.retries = 0;
  options.task_timeout = std::chrono::milliseconds(1000);  // an echo never nears it, even under a sanitizer on a loaded machine
  Pool pool(options);
  // Every 97th task crashes its worker, every 389th runs past its limit; the
  // rest are echoes in the same chunks.
  const long n = 2000;
  long produced = 0;
  std::vector<TaskResult> results;
  TaskStream stream(pool, 64);
  auto drain_one = [&] { results.push_back(*stream.next()); };
  for (; produced < n; ++produced) {
    if (stream.full()) drain_one();
    if (produced % 97 == 50) stream.push("testkit.segfault", Value::object());
    else if (produced % 389 == 100) stream.push("testkit.sleep", {{"ms", 5000}});
    else stream.push("example.echo", {{"i", produced}});
  }
  while (stream.in_flight() > 0) drain_one();
  ASSERT_EQ(results.size(), std::size_t(n));
  for (long i = 0; i < n; ++i) {
    const TaskResult& r = results[std::size_t(i)];
    if (i % 97 == 50) {
      ASSERT_EQ(r.status(), "crashed") << i;
    } else if (i % 389 == 100) {
      ASSERT_EQ(r.status(), "timeout") << i;
    } else {
      ASSERT_TRUE(r.ok()) << i << ": " << r.error->message;
      ASSERT_EQ(r.result.at("i"), i);
    }
  }
}

TEST(Stream, MapStreamOfManyTasksInOrder) {
  Pool pool(test::test_pool_options(2));
  long x = 0, seen = 0;
  const std::size_t count = pool.map_stream(
      "example.echo",
      [&]() -> std::optional<Value> {
        if (x == 100000) return std::nullopt;
        Value params = {{"x", x++}};
        return params;
      },
      [&](TaskResult&& r) {
        ASSERT_TRUE(r.ok()) << r.error->message;
        ASSERT_EQ(r.result.at("x"), seen++);
      });
  EXPECT_EQ(count, 100000u);
  EXPECT_EQ(seen, 100000);
}

// ------------------------------------------------------------ resume

fs::path echo_config(const TempDir& dir, const std::string& name, int n, const std::string& extra = "") {
  return dir.write(name, kPlugins + "output: out.jsonl\nanalyses:\n  - name: e\n    analysis: example.echo\n" + extra +
                             fmt::format("    sweep: {{x: {{range: [0, {}]}}}}\n", n));
}

TEST(CliResume, ARecordOfAnotherConfigIsRefusedNamingTheLine) {
  TempDir dir;
  const fs::path a = echo_config(dir, "a.yaml", 5);
  ASSERT_EQ(run_mathpool({"run", a.string()}).exit_code, 0);
  // Same run name and indices, other params.
  const fs::path b = echo_config(dir, "b.yaml", 5, "    params: {k: 1}\n");
  auto r = run_mathpool({"run", b.string(), "--resume"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("out.jsonl:1: the record of run 'e' task 0 repeat 0 has other params"), std::string::npos) << r.err;
  // Another analysis under the same name.
  const fs::path c = dir.write("c.yaml", kPlugins + "output: out.jsonl\nanalyses:\n  - name: e\n    analysis: example.sum\n"
                                                    "    sweep: {values: [[1]]}\n");
  r = run_mathpool({"run", c.string(), "--resume"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("out.jsonl:1: the record of run 'e' (analysis \"example.echo\") does not belong"), std::string::npos)
      << r.err;
  // A task index the config does not have.
  const fs::path d = echo_config(dir, "d.yaml", 3);
  r = run_mathpool({"run", d.string(), "--resume"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("out.jsonl:4: run 'e' has no task 3 repeat 0"), std::string::npos) << r.err;
  // The file is untouched by every refusal.
  EXPECT_EQ(read_records(dir.path() / "out.jsonl").size(), 5u);
}

TEST(CliResume, NothingLeftExitsWithoutStartingAPool) {
  TempDir dir;
  const fs::path a = echo_config(dir, "a.yaml", 4);
  ASSERT_EQ(run_mathpool({"run", a.string()}).exit_code, 0);
  // A worker program that cannot start would fail any pool: none is started.
  const auto r = run_mathpool({"run", a.string(), "--resume", "--plugin-path", "/nonexistent-plugin-dir"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_records(dir.path() / "out.jsonl").size(), 4u);
}

TEST(CliResume, TenMillionTaskRunResumesFromASparseFile) {
  TempDir dir;
  // Records of the first 3 tasks and of task 9,999,998 of a 10M-task run: the
  // bitmap stays small and only the missing ones are counted as left.
  const fs::path config = echo_config(dir, "a.yaml", 10000000);
  std::ofstream out(dir.path() / "out.jsonl");
  for (long t : {0L, 1L, 2L, 9999998L})
    out << fmt::format(R"({{"run":"e","analysis":"example.echo","task":{},"repeat":0,"params":{{"x":{}}},)"
                       R"("status":"ok","result":{{"x":{}}},"worker":1,"seconds":0.0}})",
                       t, t, t)
        << '\n';
  out.close();
  RunConfig c = load_config(config);
  RunOptions options;
  options.resume = true;
  std::atomic<int> records{0};
  // Interrupt after a little progress: we only need to see what was skipped.
  options.interrupted = [&] { return ++records > 2000; };
  const RunSummary summary = run_config(c, options);
  EXPECT_EQ(summary.planned, 10000000u);
  EXPECT_EQ(summary.skipped, 4u);
  const auto lines = read_records(dir.path() / "out.jsonl");
  ASSERT_GT(lines.size(), 4u);
  EXPECT_EQ(lines[4].at("task"), 3);  // the first missing one comes next
}

// ------------------------------------------------------------ host memory

// Peak resident memory (VmHWM) of a running process, 0 once it is gone.
long peak_kb(int pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

long host_peak_kb_for(const TempDir& dir, long tasks) {
  const fs::path config = dir.write(fmt::format("m{}.yaml", tasks),
                                    kPlugins + "pool: {workers: 2}\noutput: /dev/null\nanalyses:\n  - name: e\n"
                                               "    analysis: example.echo\n" +
                                        fmt::format("    sweep: {{x: {{range: [0, {}]}}}}\n", tasks));
  const int pid = test::start_mathpool({"run", config.string()}, dir.path() / "log.txt");
  long peak = 0;
  // VmHWM only grows: the last reading before exit is the host's own peak
  // (its workers are separate processes and are not counted).
  for (;;) {
    int status;
    const long now = peak_kb(pid);
    peak = std::max(peak, now);
    if (waitpid(pid, &status, WNOHANG) == pid) {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return peak;
}

TEST(HostMemory, DoesNotGrowWithTheNumberOfTasks) {
  TempDir dir;
  const long small = host_peak_kb_for(dir, 200000);
  const long large = host_peak_kb_for(dir, 2000000);
  RecordProperty("peak_kb_200k", int(small));
  RecordProperty("peak_kb_2M", int(large));
  std::printf("[ memory   ] host peak: 200k tasks %ld KB, 2M tasks %ld KB\n", small, large);
  EXPECT_GT(small, 0);
  EXPECT_LT(large, small + 4096) << "the host grew by more than 4 MB for 10x the tasks";
  EXPECT_LT(large, 64 * 1024);
}

}  // namespace
}  // namespace mathpool

namespace mathpool {
namespace {

// ------------------------------------------------------------ validate = what a run would refuse

test::CommandResult validate(const test::TempDir& dir, const std::string& entries, const std::string& top = "") {
  const auto config = dir.write("v.yaml", fmt::format("plugin_path: [\"{}\"]\n{}analyses:\n{}", EXAMPLE_PLUGIN, top, entries));
  return test::run_mathpool({"validate", config.string()});
}

TEST(CliValidate, RefusesWhatEveryTaskWouldFailWith) {
  test::TempDir dir;
  auto r = validate(dir, "  - name: s\n    analysis: example.sum\n    params: {values: [1], bogus: 2}\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("v.yaml:5: key 'analyses[0].params.bogus': unknown parameter 'bogus' for example.sum (known: values, offset)"),
            std::string::npos)
      << r.err;
  r = validate(dir, "  - name: s\n    analysis: example.sum\n    sweep: {offset: [1, 2]}\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("key 'analyses[0].params': parameter 'values' is required by example.sum"), std::string::npos)
      << r.err;
  r = validate(dir, "  - name: s\n    analysis: example.sum\n    params: {values: [1]}\n    sweep: {offset: [a, b]}\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("key 'analyses[0].sweep.offset': parameter 'offset' of example.sum must be an integer, got \"a\""),
            std::string::npos)
      << r.err;
  // An open analysis takes anything.
  r = validate(dir, "  - name: e\n    analysis: example.echo\n    params: {anything: [1]}\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(CliValidate, RefusesAnOutputThatCannotBeWritten) {
  test::TempDir dir;
  const auto r = validate(dir, "  - {name: e, analysis: example.echo}\n", "output: no/such/dir/out.jsonl\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("key 'output': cannot write output file"), std::string::npos) << r.err;
  // The run refuses it the same way, before any task.
  const auto run = test::run_mathpool({"run", (dir.path() / "v.yaml").string()});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("key 'output': cannot write output file"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace mathpool

namespace mathpool {
namespace {

// ------------------------------------------------------------ host programs

using test::in_child;

TEST(HostProgram, AForkedChildGetsAClearErrorAtOnceNotAHang) {
  Pool pool(test::test_pool_options(1));
  const int code = in_child([&] {
    auto future = pool.submit("example.echo", {{"x", 1}});
    if (future.wait_for(std::chrono::seconds(2)) != std::future_status::ready) return 1;
    const TaskResult r = future.get();
    return !r.ok() && r.error->message.find("a forked child must create a pool of its own") != std::string::npos ? 0 : 2;
  });
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(pool.submit("example.echo", {{"x", 1}}).get().ok());  // the parent's pool goes on
}

TEST(HostProgram, DefaultPoolTakesOptionsFromCodeOrEnvironmentBeforeFirstUse) {
  EXPECT_EQ(in_child([] {
              setenv("MATHPOOL_WORKERS", "3", 1);
              setenv("MATHPOOL_PLUGIN_PATH", EXAMPLE_PLUGIN, 1);
              Pool& pool = default_pool();
              return pool.size() == 3 && pool.submit("example.echo", {{"x", 1}}).get().ok() ? 0 : 1;
            }),
            0);
  EXPECT_EQ(in_child([] {
              PoolOptions options = test::test_pool_options(1);
              set_default_pool_options(options);
              Pool& pool = default_pool();
              if (pool.size() != 1) return 1;
              try {
                set_default_pool_options(options);
                return 2;  // too late: must throw
              } catch (const Error& e) {
                return e.kind() == ErrorKind::misuse ? 0 : 3;
              }
            }),
            0);
  // A bad environment value is a clear error, not a silent default.
  EXPECT_EQ(in_child([] {
              setenv("MATHPOOL_WORKERS", "many", 1);
              try {
                default_pool();
                return 1;
              } catch (const Error& e) {
                return std::string(e.what()).find("MATHPOOL_WORKERS") != std::string::npos ? 0 : 2;
              }
            }),
            0);
}

TEST(HostProgram, DefaultPoolExitIsBoundedWhileATaskRuns) {
  // A task that would run 30 s must not hold the exit for more than the grace.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(in_child([] {
              set_default_pool_options(test::test_pool_options(1));
              auto pending = default_pool().submit("testkit.sleep", {{"ms", 30000}});
              std::this_thread::sleep_for(std::chrono::milliseconds(100));
              std::exit(0);  // runs the exit handler
              return 1;
            }),
            0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(6));
}

}  // namespace
}  // namespace mathpool

namespace mathpool {
namespace {

TEST(FailedRecords, SecondsIsTheTimeUntilTheFault) {
  PoolOptions options = test::test_pool_options(1);
  options.task_timeout = std::chrono::milliseconds(300);
  options.retries = 0;
  Pool pool(options);
  const TaskResult timed_out = pool.submit("testkit.sleep", {{"ms", 5000}}).get();
  ASSERT_EQ(timed_out.status(), "timeout");
  EXPECT_GE(timed_out.seconds, 0.3);
  EXPECT_LT(timed_out.seconds, 2.0);
  const TaskResult crashed = pool.submit("testkit.segfault", Value::object()).get();
  ASSERT_EQ(crashed.status(), "crashed");
  EXPECT_GT(crashed.seconds, 0.0);
  EXPECT_LT(crashed.seconds, 2.0);
}

}  // namespace
}  // namespace mathpool

namespace mathpool {
namespace {

TEST(Setup, AnExceptionWithAnEmptyMessageIsAFailureNotASuccess) {
  Pool pool(test::test_pool_options(1));
  const TaskResult r = pool.submit("testkit.silent_setup_failure", Value::object()).get();
  ASSERT_FALSE(r.ok()) << "the task ran although its setup threw";
  EXPECT_EQ(r.error->kind, ErrorKind::plugin_error);
  EXPECT_NE(r.error->message.find("setup failed: the setup threw an exception with no message"), std::string::npos)
      << r.error->message;
  EXPECT_TRUE(pool.submit("example.echo", {{"x", 1}}).get().ok());  // the others go on
}

}  // namespace
}  // namespace mathpool

namespace mathpool {
namespace {

TEST(PoolStatistics, PerAnalysisCountsQueueDepthMemoryAndTheTemplate) {
  Pool pool(test::test_pool_options(2));
  pool.map("example.echo", std::vector<Value>(50, Value{{"x", 1}}));
  pool.submit("testkit.throw_int", Value::object()).get();
  const PoolStats stats = pool.stats();
  ASSERT_EQ(stats.analyses.count("example.echo"), 1u);
  EXPECT_EQ(stats.analyses.at("example.echo").tasks_ok, 50);
  EXPECT_EQ(stats.analyses.at("testkit.throw_int").tasks_failed, 1);
  EXPECT_GE(stats.analyses.at("example.echo").seconds, 0.0);
  EXPECT_EQ(stats.queued, 0);
  EXPECT_EQ(stats.in_flight, 0);
  for (const WorkerStats& w : stats.workers) {
    EXPECT_GT(w.rss_bytes, 0) << "worker " << w.pid;
    EXPECT_GT(w.pss_bytes, 0);
    EXPECT_LE(w.pss_bytes, w.rss_bytes);
  }
  const bool zygote = test::test_pool_options(1).start == StartMode::zygote;
  if (zygote) {
    EXPECT_GT(stats.template_pid, 0);
    EXPECT_GT(stats.template_setup_seconds, 0.0);
    EXPECT_GT(stats.template_rss_bytes, 0);
    // Copy-on-write: a forked worker shares most of its pages with the template.
    EXPECT_LT(stats.workers[0].pss_bytes, stats.workers[0].rss_bytes);
  } else {
    EXPECT_EQ(stats.template_pid, 0);
  }
}

TEST(PoolStatistics, QueueDepthWhileTasksWait) {
  Pool pool(test::test_pool_options(1));
  std::vector<std::future<TaskResult>> futures;
  for (int i = 0; i < 5; ++i) futures.push_back(pool.submit("testkit.sleep", {{"ms", 200}}));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const PoolStats stats = pool.stats();
  EXPECT_EQ(stats.queued + stats.in_flight, 5) << stats.queued << " queued, " << stats.in_flight << " in flight";
  EXPECT_GE(stats.in_flight, 1);
  for (auto& f : futures) f.get();
}

}  // namespace
}  // namespace mathpool

namespace mathpool {
namespace {

// The records a run writes from joined results (ok records of consecutive
// tasks, handed over as one) are those it writes one by one under --trace,
// which turns joining off; so are its counts.
TEST(CliRun, JoinedRecordsAreWrittenAsEachTasksOwnAndCounted) {
  test::TempDir dir;
  auto config_for = [&](const fs::path& out) {
    return dir.write(out.filename().string() + ".yaml",
                     fmt::format("plugin_path: [\"{}\"]\npool: {{workers: 2, retries: 0}}\noutput: {}\n"
                                 "analyses:\n  - name: j\n    analysis: testkit.echo\n    sweep:\n"
                                 "      x: {{range: [0, 400]}}\n"
                                 "      fault: ['', '', '', '', '', '', '', '', '', throw]\n"
                                 "  - name: k\n    analysis: testkit.echo\n    sweep: {{x: {{range: [0, 3000]}}}}\n",
                                 TESTKIT_PLUGIN, out.string()));
  };
  const fs::path joined = dir.path() / "joined.jsonl", traced = dir.path() / "traced.jsonl";
  const auto a = test::run_mathpool({"run", config_for(joined).string(), "--quiet"});
  const auto b = test::run_mathpool(
      {"run", config_for(traced).string(), "--quiet", "--trace", (dir.path() / "t.json").string()});
  ASSERT_EQ(a.exit_code, 1) << a.err;  // the throws
  ASSERT_EQ(b.exit_code, 1) << b.err;
  auto records = [](const fs::path& file) {
    std::vector<Value> out = read_records(file);
    for (Value& r : out) r.erase("worker"), r.erase("seconds");
    return out;
  };
  const std::vector<Value> want = records(traced);
  ASSERT_EQ(want.size(), 7000u);
  EXPECT_EQ(records(joined), want);
  auto counts = [](const fs::path& file) {
    return Value::parse(test::read_text(fs::path(file.string() + ".meta.json"))).at("tasks");
  };
  EXPECT_EQ(counts(joined), counts(traced));
  EXPECT_EQ(counts(joined).at("by_status"), Value::parse(R"({"error": 400, "ok": 6600})"));
}

TEST(CliRun, FloatsJsonCannotHoldAreWrittenAsStrings) {
  test::TempDir dir;
  const auto config = dir.write("f.yaml", kPlugins +
                                              "analyses:\n  - name: f\n    analysis: example.echo\n"
                                              "    params: {a: .nan, b: .inf, c: -.inf, d: 0.5}\n");
  const auto r = test::run_mathpool({"run", config.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(R"("params":{"a":"nan","b":"inf","c":"-inf","d":0.5})"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("status":"ok","result":{"a":"nan","b":"inf","c":"-inf","d":0.5})"), std::string::npos)
      << r.out;
  const Value record = Value::parse(r.out);  // still one valid JSON line
  EXPECT_EQ(record.at("result").at("a"), "nan");
}

}  // namespace
}  // namespace mathpool
