// `mathpool run --trace FILE`: the Chrome trace-event JSON a person opens in
// Perfetto or chrome://tracing. Each test runs the command as a user would,
// loads the trace with nlohmann-json and checks its tracks, slices and
// instants against the records of the same run.
#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "host/run/trace.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using mathpool::Value;
using namespace mathpool::test;
using Json = nlohmann::json;

namespace {

const std::string kTestkit = TESTKIT_PLUGIN;

std::string describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stderr\n" + r.err;
}

// Throws when the file is not one whole JSON document.
Json load_trace(const fs::path& file) {
  std::ifstream in(file);
  return Json::parse(in);
}

std::vector<Json> events_of(const Json& trace, const std::string& ph) {
  std::vector<Json> out;
  for (const Json& e : trace.at("traceEvents"))
    if (e.at("ph") == ph) out.push_back(e);
  return out;
}

// Track names by (pid, tid), from the thread_name metadata.
std::map<std::pair<long, long>, std::string> thread_names(const Json& trace) {
  std::map<std::pair<long, long>, std::string> names;
  for (const Json& e : events_of(trace, "M"))
    if (e.at("name") == "thread_name")
      names[{e.at("pid").get<long>(), e.at("tid").get<long>()}] = e.at("args").at("name").get<std::string>();
  return names;
}

// A config's head: its pool, the testkit plugins and its output.
std::string config_head(const std::string& pool, const fs::path& output) {
  return "pool: " + pool + "\nplugin_path: [" + kTestkit + "]\noutput: " + output.string() + "\nanalyses:\n";
}

// Eight echoes, a segfault and a runaway loop (timeout), two workers, no
// retries: two deaths, each of its task's fault.
std::string faulty_config(const fs::path& output) {
  return "pool: {workers: 2, task_timeout: 1s, retries: 0}\n"
         "plugin_path: [" + kTestkit + "]\n"
         "output: " + output.string() + "\n"
         "analyses:\n"
         "  - name: echoes\n"
         "    analysis: example.echo\n"
         "    sweep: {x: [1, 2, 3, 4, 5, 6, 7, 8]}\n"
         "  - name: crash\n"
         "    analysis: testkit.segfault\n"
         "  - name: naps\n"
         "    analysis: testkit.sleep\n"
         "    params: {ms: 30}\n"
         "    repeat: 4\n"
         "  - name: runaway\n"
         "    analysis: testkit.spin\n";
}

}  // namespace

TEST(Trace, TracksSlicesAndInstantsMatchTheRecords) {
  TempDir dir;
  const fs::path out = dir.path() / "out.jsonl", trace_file = dir.path() / "run.trace.json";
  const fs::path config = dir.write("faulty.yaml", faulty_config(out));
  const CommandResult r = run_mathpool({"run", config.string(), "--trace", trace_file.string(), "--quiet"});
  ASSERT_EQ(r.exit_code, 1) << describe(r);
  const std::vector<Value> records = read_records(out);
  ASSERT_EQ(records.size(), 14u);

  Json trace;
  ASSERT_NO_THROW(trace = load_trace(trace_file)) << read_text(trace_file).substr(0, 4000);
  ASSERT_TRUE(trace.at("traceEvents").is_array());
  EXPECT_EQ(trace.at("displayTimeUnit"), "ms");
  const Json& other = trace.at("otherData");
  EXPECT_EQ(other.at("tasks"), 14);
  EXPECT_EQ(other.at("slices"), 14);
  EXPECT_EQ(other.at("aggregated"), false);
  EXPECT_EQ(other.at("complete"), true);
  EXPECT_EQ(other.at("task_slice_limit"), mathpool::detail::TraceWriter::kTaskSliceLimit);

  // A named track for every worker that ran a task, the pool and the host.
  const auto names = thread_names(trace);
  std::set<std::string> track_names;
  for (const auto& [key, name] : names) track_names.insert(name);
  EXPECT_TRUE(track_names.count("pool"));
  std::set<long> workers;
  for (const Value& rec : records) workers.insert(rec["worker"].get<long>());
  for (long w : workers) {
    bool named = false;
    for (const auto& [key, name] : names)
      if (key.second == w) {
        named = true;
        EXPECT_EQ(name.rfind("worker " + std::to_string(w), 0), 0u) << name;
      }
    EXPECT_TRUE(named) << "no thread_name for worker " << w;
  }
  // The workers the pool started with carry their slot.
  int with_slot = 0;
  for (const auto& [key, name] : names) with_slot += name.find("(slot ") != std::string::npos;
  EXPECT_GE(with_slot, 2);

  // One task slice per record, on its worker's track, named by its run,
  // failed ones with their status.
  std::vector<Json> tasks;
  bool pool_start = false;
  for (const Json& e : events_of(trace, "X")) {
    if (e.at("args").contains("task")) tasks.push_back(e);
    if (e.at("name") == "pool start") pool_start = true;
  }
  EXPECT_TRUE(pool_start);
  ASSERT_EQ(tasks.size(), records.size());
  std::map<std::tuple<std::string, long, long>, Json> by_key;
  for (const Json& e : tasks) {
    const std::string run = e.at("name").get<std::string>().substr(0, e.at("name").get<std::string>().find(' '));
    by_key[{run, e.at("args").at("task").get<long>(), e.at("args").at("repeat").get<long>()}] = e;
  }
  for (const Value& rec : records) {
    const std::string run = rec["run"];
    const auto it = by_key.find({run, rec["task"].get<long>(), rec["repeat"].get<long>()});
    ASSERT_NE(it, by_key.end()) << "no slice for " << rec.dump();
    const Json& e = it->second;
    const std::string status = rec["status"];
    EXPECT_EQ(e.at("name"), status == "ok" ? run : run + " (" + status + ")");
    EXPECT_EQ(e.at("cat"), status);
    EXPECT_EQ(e.at("args").at("status"), status);
    EXPECT_EQ(e.at("args").at("analysis").get<std::string>(), rec["analysis"].get<std::string>());
    EXPECT_EQ(e.at("tid").get<long>(), rec["worker"].get<long>());
    EXPECT_NEAR(e.at("dur").get<double>(), rec["seconds"].get<double>() * 1e6, 1.0);
    EXPECT_GE(e.at("ts").get<double>(), 0.0);
  }
  // The records: the crash and the timeout are there, as they should be.
  std::map<std::string, std::string> status_of_run;
  for (const Value& rec : records) status_of_run[rec["run"]] = rec["status"];
  EXPECT_EQ(status_of_run["crash"], "crashed");
  EXPECT_EQ(status_of_run["runaway"], "timeout");

  // Instants: the crash and the timeout as the records say, and both deaths
  // (with their reasons) as the pool's statistics say.
  std::multiset<std::string> instants;
  for (const Json& e : events_of(trace, "i")) instants.insert(e.at("name").get<std::string>());
  EXPECT_EQ(instants.count("crashed"), 1u);
  EXPECT_EQ(instants.count("timeout"), 1u);
  // The crash's death is read from the statistics well before the run ends
  // (the naps and the runaway take over a second after it); the timeout's
  // is the run's last event, seen only when the pool counted it in time.
  const std::size_t ended = instants.count("worker ended");
  EXPECT_GE(ended, 1u);
  EXPECT_LE(ended, 2u);
  EXPECT_EQ(other.at("deaths"), ended);
  long crashed_worker = 0;
  for (const Value& rec : records)
    if (rec["run"] == "crash") crashed_worker = rec["worker"].get<long>();
  bool crash_death = false;
  for (const Json& e : events_of(trace, "i"))
    if (e.at("name") == "worker ended") {
      const std::string reason = e.at("args").at("reason");
      EXPECT_FALSE(reason.empty());
      if (e.at("tid").get<long>() == crashed_worker && reason.find("SIGSEGV") != std::string::npos) crash_death = true;
    }
  EXPECT_TRUE(crash_death) << "no death with its reason on the crashed worker's track";

  // Per track, slices follow one another: in file order their starts never
  // go back, and none overlaps the next.
  std::map<std::pair<long, long>, std::vector<Json>> per_track;
  for (const Json& e : tasks) per_track[{e.at("pid").get<long>(), e.at("tid").get<long>()}].push_back(e);
  for (const auto& [key, slices] : per_track)
    for (std::size_t i = 1; i < slices.size(); ++i) {
      const double prev_end = slices[i - 1].at("ts").get<double>() + slices[i - 1].at("dur").get<double>();
      EXPECT_GE(slices[i].at("ts").get<double>() + 0.01, prev_end) << slices[i].dump();
    }
  // The run's slice on the host's track spans every task.
  double last_end = 0;
  for (const Json& e : tasks) last_end = std::max(last_end, e.at("ts").get<double>() + e.at("dur").get<double>());
  bool run_slice = false;
  for (const Json& e : events_of(trace, "X"))
    if (e.at("name") == "run") {
      run_slice = true;
      EXPECT_GE(e.at("dur").get<double>() + 1000, last_end);
    }
  EXPECT_TRUE(run_slice);
}

TEST(Trace, AnUnwritableTraceStopsTheRunBeforeItStarts) {
  TempDir dir;
  const fs::path out = dir.path() / "out.jsonl";
  const fs::path config = dir.write("faulty.yaml", faulty_config(out));
  const CommandResult r =
      run_mathpool({"run", config.string(), "--trace", (dir.path() / "no" / "such" / "t.json").string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_NE(r.err.find("--trace"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

TEST(Trace, AHugeRunStaysBounded) {
  TempDir dir;
  const fs::path trace_file = dir.path() / "big.trace.json";
  const fs::path config = dir.write("big.yaml",
                                    "pool: {workers: 2}\n"
                                    "analyses:\n"
                                    "  - name: e\n"
                                    "    analysis: example.echo\n"
                                    "    sweep: {x: {range: [0, 300000]}}\n");
  const CommandResult r = run_mathpool(
      {"run", config.string(), "-o", "/dev/null", "--trace", trace_file.string(), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto limit = mathpool::detail::TraceWriter::kTaskSliceLimit;
  // Each slice is under 200 bytes; the aggregated ones are few.
  EXPECT_LT(fs::file_size(trace_file), limit * 200 + (1u << 20));
  Json trace;
  ASSERT_NO_THROW(trace = load_trace(trace_file));
  const Json& other = trace.at("otherData");
  EXPECT_EQ(other.at("tasks"), 300000);
  EXPECT_EQ(other.at("slices"), limit);
  EXPECT_EQ(other.at("aggregated"), true);
  std::uint64_t single = 0, aggregated_tasks = 0, aggregated = 0;
  for (const Json& e : events_of(trace, "X")) {
    if (e.at("args").contains("task")) ++single;
    if (e.at("cat") == "aggregated") {
      ++aggregated;
      aggregated_tasks += e.at("args").at("tasks").get<std::uint64_t>();
      EXPECT_EQ(e.at("name"), std::to_string(e.at("args").at("tasks").get<std::uint64_t>()) + " tasks");
      EXPECT_EQ(e.at("args").at("ok"), e.at("args").at("tasks"));
    }
  }
  EXPECT_EQ(single, limit);
  EXPECT_EQ(single + aggregated_tasks, 300000u);
  EXPECT_EQ(other.at("aggregated_slices"), aggregated);
  EXPECT_LT(aggregated, 10000u);
}

TEST(Trace, SigintLeavesAWholeTrace) {
  TempDir dir;
  const fs::path out = dir.path() / "partial.jsonl", trace_file = dir.path() / "partial.trace.json";
  const fs::path config = dir.write("naps.yaml",
                                    config_head("{workers: 2}", out) +
                                    "  - name: naps\n"
                                    "    analysis: testkit.sleep\n"
                                    "    params: {ms: 20}\n"
                                    "    repeat: 400\n");
  const int pid = start_mathpool({"run", config.string(), "--trace", trace_file.string()}, dir.path() / "log.txt");
  for (int i = 0; i < 1000 && read_records(out).size() < 10; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  EXPECT_EQ(wait_exit(pid), 130) << read_text(dir.path() / "log.txt");
  const auto records = read_records(out);
  ASSERT_LT(records.size(), 400u) << "the run finished before the interrupt";
  Json trace;
  ASSERT_NO_THROW(trace = load_trace(trace_file)) << read_text(trace_file).substr(0, 2000);
  EXPECT_EQ(trace.at("otherData").at("complete"), false);
  EXPECT_EQ(trace.at("otherData").at("tasks"), records.size());
  bool interrupted = false;
  for (const Json& e : events_of(trace, "i")) interrupted = interrupted || e.at("name") == "interrupted";
  EXPECT_TRUE(interrupted);
}

// Workers that die faster than the statistics are read (every 100 ms): each
// process that ran a task still gets a track that names its slot, each
// replacement a "worker started", and each death its own process's track
// (found from outside: most of a crash loop's ended on the pool's track
// with pid 0, and most replacements' tracks had neither).
TEST(Trace, ACrashLoopLeavesEveryProcessItsSlotStartAndEnd) {
  TempDir dir;
  const fs::path out = dir.path() / "out.jsonl", trace_file = dir.path() / "loop.trace.json";
  const fs::path config = dir.write("loop.yaml",
                                    config_head("{workers: 2, retries: 0}", out) +
                                    "  - name: crash\n"
                                    "    analysis: testkit.segfault\n"
                                    "    repeat: 24\n"
                                    "  - name: echoes\n"
                                    "    analysis: example.echo\n"
                                    "    sweep: {x: {range: [0, 40]}}\n"
                                    "  - name: nap\n"
                                    "    analysis: testkit.sleep\n"
                                    "    params: {ms: 300}\n");
  const CommandResult r = run_mathpool({"run", config.string(), "--trace", trace_file.string(), "--quiet"});
  ASSERT_EQ(r.exit_code, 1) << describe(r);
  const std::vector<Value> records = read_records(out);
  ASSERT_EQ(records.size(), 65u);
  Json trace;
  ASSERT_NO_THROW(trace = load_trace(trace_file)) << read_text(trace_file).substr(0, 4000);

  std::set<long> crashed, workers;
  for (const Value& rec : records) {
    workers.insert(rec["worker"].get<long>());
    if (rec["status"] == "crashed") crashed.insert(rec["worker"].get<long>());
  }
  ASSERT_EQ(crashed.size(), 24u) << "each crash ends its own process";
  const auto names = thread_names(trace);
  std::map<long, std::string> name_of;
  for (const auto& [key, name] : names) name_of[key.second] = name;
  for (long w : workers) {
    ASSERT_TRUE(name_of.count(w)) << "no track for worker " << w;
    EXPECT_NE(name_of[w].find("(slot "), std::string::npos) << name_of[w];
  }
  std::map<long, int> started, ended;
  for (const Json& e : events_of(trace, "i")) {
    const long tid = e.at("tid").get<long>();
    if (e.at("name") == "worker started") ++started[tid];
    if (e.at("name") == "worker ended") {
      ++ended[tid];
      EXPECT_EQ(e.at("args").at("pid").get<long>(), tid) << e.dump();
      EXPECT_TRUE(workers.count(tid)) << "a death off its process's track: " << e.dump();
    }
  }
  for (long w : crashed) EXPECT_EQ(ended[w], 1) << "worker " << w << " (" << name_of[w] << ")";
  // Every process starts once: with the pool (its setup slice) or as a
  // replacement ("worker started"), never after its first task or its end.
  std::map<long, double> first_task, start_at, end_at;
  std::map<long, int> setups;
  for (const Json& e : events_of(trace, "X")) {
    const long tid = e.at("tid").get<long>();
    const double ts = e.at("ts").get<double>();
    if (e.at("args").contains("task") && (!first_task.count(tid) || ts < first_task[tid])) first_task[tid] = ts;
    if (e.at("name") == "worker setup") ++setups[tid], start_at[tid] = ts;
  }
  for (const Json& e : events_of(trace, "i")) {
    if (e.at("name") == "worker started") start_at[e.at("tid").get<long>()] = e.at("ts").get<double>();
    if (e.at("name") == "worker ended") end_at[e.at("tid").get<long>()] = e.at("ts").get<double>();
  }
  for (long w : workers) {
    EXPECT_EQ(started[w] + (started[w] ? 0 : setups[w]), 1) << "worker " << w << " (" << name_of[w] << ")";
    EXPECT_LE(started[w], 1) << "worker " << w;
    ASSERT_TRUE(start_at.count(w)) << "worker " << w;
    EXPECT_LE(start_at[w], first_task[w] + 0.01) << "worker " << w << " started after its first task";
    if (end_at.count(w)) EXPECT_LE(start_at[w], end_at[w] + 0.01) << "worker " << w << " started after its end";
  }
  EXPECT_EQ(trace.at("otherData").at("deaths"), 24);
}
