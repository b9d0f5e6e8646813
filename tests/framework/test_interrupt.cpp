// Interrupt and resume: SIGINT mid-run exits 130 promptly and keeps every
// finished record; --resume then runs only what is missing, and the union
// equals an uninterrupted run.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "test_support.hpp"

namespace mathpool {
namespace {

using Clock = std::chrono::steady_clock;

std::string sleepy_config(const std::string& output) {
  return "pool: {workers: 2}\n"
         "output: " + output + "\n"
         "analyses:\n"
         "  - name: naps\n"
         "    analysis: testkit.sleep\n"
         "    params: {ms: 15}\n"
         "    sweep: {tag: [" + [] {
           std::string list;
           for (int i = 0; i < 400; ++i) list += (i ? "," : "") + std::to_string(i);
           return list;
         }() + "]}\n"
         "  - name: sums\n"
         "    analysis: example.sum\n"
         "    sweep: {offset: [1, 2, 3], values: [[1], [2, 3]]}\n"
         "    repeat: 2\n";
}

// (run, task, repeat) -> the record without the fields that legitimately vary.
std::map<std::tuple<std::string, int, int>, Value> by_key(const std::vector<Value>& records) {
  std::map<std::tuple<std::string, int, int>, Value> out;
  for (Value r : records) {
    auto key = std::make_tuple(r["run"].get<std::string>(), r["task"].get<int>(), r["repeat"].get<int>());
    r.erase("worker");
    r.erase("seconds");
    if (r.contains("result")) r["result"].erase("pid");
    EXPECT_TRUE(out.emplace(key, r).second) << "duplicate record " << r.dump();
  }
  return out;
}

TEST(Interrupt, SigintStopsPromptlyAndResumeCompletesTheRun) {
  test::TempDir dir;
  const auto config = dir.write("run.yaml", sleepy_config("partial.jsonl"));
  const auto clean_config = dir.write("clean.yaml", sleepy_config("clean.jsonl"));
  const std::vector<std::string> plugin = {"--plugin-path", TESTKIT_PLUGIN};

  std::vector<std::string> args = {"run", config.string()};
  args.insert(args.end(), plugin.begin(), plugin.end());
  const int pid = test::start_mathpool(args, dir.path() / "log.txt");
  // Interrupt once some records are out, whatever the machine's load.
  for (int i = 0; i < 1000 && test::read_records(dir.path() / "partial.jsonl").size() < 10; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto sent = Clock::now();
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  EXPECT_EQ(test::wait_exit(pid), 130);
  const double stop_seconds = std::chrono::duration<double>(Clock::now() - sent).count();
  std::cout << "[ latency  ] SIGINT to exit: " << stop_seconds * 1000 << " ms\n";
  EXPECT_LT(stop_seconds, 2.0);

  const auto partial = test::read_records(dir.path() / "partial.jsonl");
  ASSERT_GT(partial.size(), 0u);
  ASSERT_LT(partial.size(), 412u) << "the run finished before the interrupt";
  for (std::size_t i = 0; i < partial.size(); ++i) {  // a prefix, in task order
    EXPECT_EQ(partial[i]["run"], "naps");
    EXPECT_EQ(partial[i]["task"], i);
  }

  std::vector<std::string> resume = {"run", config.string(), "--resume"};
  resume.insert(resume.end(), plugin.begin(), plugin.end());
  const auto resumed = test::run_mathpool(resume);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;

  std::vector<std::string> clean = {"run", clean_config.string()};
  clean.insert(clean.end(), plugin.begin(), plugin.end());
  ASSERT_EQ(test::run_mathpool(clean).exit_code, 0);

  const auto after = test::read_records(dir.path() / "partial.jsonl");
  const auto reference = test::read_records(dir.path() / "clean.jsonl");
  EXPECT_EQ(after.size(), reference.size());
  EXPECT_EQ(by_key(after), by_key(reference));
}

// Found from outside (a hostile tester): records of quick tasks that a worker
// finished just before a long task of the same analysis waited in the worker
// until that task ended (its replies go out in batches), and SIGINT during it
// dropped them. They reach the output while the long task runs.
TEST(Interrupt, RecordsFinishedBeforeALongTaskAreWrittenWhileItRuns) {
  test::TempDir dir;
  const auto output = dir.path() / "out.jsonl";
  const auto config = dir.write("run.yaml",
                                "pool: {workers: 1}\n"
                                "output: " + output.string() + "\n"
                                "analyses:\n"
                                "  - name: quick\n"
                                "    analysis: testkit.sleep\n"
                                "    params: {ms: 0}\n"
                                "    sweep: {tag: {range: [0, 3000]}}\n"
                                "  - name: long\n"
                                "    analysis: testkit.sleep\n"
                                "    params: {ms: 20000}\n");
  const int pid = test::start_mathpool({"run", config.string(), "--plugin-path", TESTKIT_PLUGIN},
                                       dir.path() / "log.txt");
  const auto started = Clock::now();
  while (test::read_records(output).size() < 3000 && Clock::now() - started < std::chrono::seconds(8))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::size_t seen = test::read_records(output).size();
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  EXPECT_EQ(test::wait_exit(pid), 130) << test::read_text(dir.path() / "log.txt");
  EXPECT_EQ(seen, 3000u) << "records held behind the long task";
  EXPECT_EQ(test::read_records(output).size(), 3000u);
}

// Found from outside (a hostile tester): a --resume started while the run
// it resumes still ran wrote the same file at once (59,198 duplicates in
// 153,198 records, a torn line). A run holds its output: a second is
// refused, naming why, and the first run's file stays whole.
TEST(Interrupt, ASecondRunOnAnOutputAnotherRunWritesIsRefusedAndTheFileStaysWhole) {
  test::TempDir dir;
  const auto config = dir.write("run.yaml", sleepy_config("out.jsonl"));
  const std::vector<std::string> plugin = {"--plugin-path", TESTKIT_PLUGIN};
  std::vector<std::string> args = {"run", config.string(), "--quiet"};
  args.insert(args.end(), plugin.begin(), plugin.end());
  const int pid = test::start_mathpool(args, dir.path() / "log.txt");
  for (int i = 0; i < 1000 && test::read_records(dir.path() / "out.jsonl").size() < 10; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (const char* second : {"--resume", "--force"}) {
    std::vector<std::string> again = {"run", config.string(), second, "--quiet"};
    again.insert(again.end(), plugin.begin(), plugin.end());
    const auto refused = test::run_mathpool(again);
    EXPECT_EQ(refused.exit_code, 2) << second << ": " << refused.err;
    EXPECT_NE(refused.err.find("is being written by another run"), std::string::npos) << refused.err;
  }
  ASSERT_NE(test::read_records(dir.path() / "out.jsonl").size(), 412u) << "the run ended before the second began";
  EXPECT_EQ(test::wait_exit(pid), 0) << test::read_text(dir.path() / "log.txt");
  const auto records = test::read_records(dir.path() / "out.jsonl");
  EXPECT_EQ(records.size(), 412u);
  EXPECT_EQ(by_key(records).size(), 412u);  // each task once
  // Once it has ended, the file is free again.
  std::vector<std::string> resume = {"run", config.string(), "--resume", "--quiet"};
  resume.insert(resume.end(), plugin.begin(), plugin.end());
  EXPECT_EQ(test::run_mathpool(resume).exit_code, 0);
}

TEST(Interrupt, ResumeOfACompleteRunRunsNothing) {
  test::TempDir dir;
  const auto config = dir.write("run.yaml",
                                "output: out.jsonl\nanalyses:\n"
                                "  - {name: e, analysis: example.echo, params: {x: 1}, repeat: 3}\n");
  ASSERT_EQ(test::run_mathpool({"run", config.string()}).exit_code, 0);
  const auto first = test::read_records(dir.path() / "out.jsonl");
  ASSERT_EQ(test::run_mathpool({"run", config.string(), "--resume"}).exit_code, 0);
  EXPECT_EQ(test::read_records(dir.path() / "out.jsonl"), first);
}

TEST(Interrupt, ResumeToStandardOutputIsRefused) {
  test::TempDir dir;
  const auto config = dir.write("run.yaml", "analyses:\n  - {name: e, analysis: example.echo}\n");
  const auto result = test::run_mathpool({"run", config.string(), "--resume"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("mathpool: error: --resume needs an output file"), std::string::npos)
      << result.err;
}

}  // namespace
}  // namespace mathpool

namespace mathpool {
namespace {

bool process_alive(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close = line.rfind(')');
  return close != std::string::npos && line.size() > close + 2 && line[close + 2] != 'Z';
}

TEST(HostDeath, WorkersDieWithAKilledHostInBothStartModes) {
  for (const std::string start : {"spawn", "zygote"}) {
    test::TempDir dir;
    const auto config = dir.write(
        "run.yaml", "pool: {workers: 2, start: " + start + "}\noutput: out.jsonl\nanalyses:\n"
                    "  - {name: pids, analysis: testkit.pid, repeat: 4}\n"
                    "  - {name: naps, analysis: testkit.sleep, params: {ms: 20000}, repeat: 4}\n");
    const int host = test::start_mathpool({"run", config.string(), "--plugin-path", TESTKIT_PLUGIN},
                                          dir.path() / "log.txt");
    std::vector<Value> records;
    for (int i = 0; i < 500 && records.size() < 4; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      records = test::read_records(dir.path() / "out.jsonl");
    }
    ASSERT_EQ(records.size(), 4u) << start;
    std::set<int> workers;
    for (const Value& r : records) workers.insert(r["result"]["pid"].get<int>());
    ::kill(host, SIGKILL);
    EXPECT_EQ(test::wait_exit(host), 128 + SIGKILL);
    const auto killed = Clock::now();
    for (int pid : workers) {
      while (process_alive(pid) && Clock::now() - killed < std::chrono::seconds(3))
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      EXPECT_FALSE(process_alive(pid)) << start << ": worker " << pid << " outlived its host";
    }
    std::cout << "[ latency  ] " << start << " workers gone after host SIGKILL: "
              << std::chrono::duration<double>(Clock::now() - killed).count() * 1000 << " ms\n";
  }
}

}  // namespace
}  // namespace mathpool
