// End-to-end tests of `mathpool run`'s outputs: an existing output is never
// lost by accident (--resume, --force), outputs that are not regular files,
// output_fields/--fields, zstd-compressed outputs and their resume, and
// resume files written to hurt.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <zstd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace fs = std::filesystem;
using mathpool::Value;
using namespace mathpool::test;
using namespace std::chrono_literals;

namespace {

const std::string kTestkit = TESTKIT_PLUGIN;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stdout (first 2000)\n" + r.out.substr(0, 2000) +
         "\n--- stderr\n" + r.err;
}

void expect_one_error_line(const CommandResult& r) {
  EXPECT_EQ(r.err.rfind("mathpool: error: ", 0), 0u) << describe(r);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << describe(r);
}

// Four echo tasks and two sums; `output` goes into the config.
std::string small_config(const std::string& output = "") {
  return (output.empty() ? "" : "output: " + output + "\n") +
         "pool: {workers: 2}\n"
         "analyses:\n"
         "  - name: echo\n"
         "    analysis: example.echo\n"
         "    sweep: {x: [1, 2, 3, 4]}\n"
         "  - name: sums\n"
         "    analysis: example.sum\n"
         "    sweep: {values: [[1], [2, 3]]}\n";
}

std::string compress_frame(const std::string& text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  const std::size_t n = ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 3);
  out.resize(n);
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

// ---------------------------------------------------------------- never lost

TEST(Outputs, AnExistingOutputIsRefusedNamingResumeAndForce) {
  TempDir dir;
  const fs::path config = dir.write("o.yaml", small_config());
  const fs::path keep = dir.write("keep.jsonl", "precious\n");
  const CommandResult r = run_mathpool({"run", config.string(), "-o", keep.string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, "--resume")) << r.err;
  EXPECT_TRUE(contains(r.err, "--force")) << r.err;
  EXPECT_TRUE(contains(r.err, keep.string())) << r.err;
  EXPECT_EQ(read_text(keep), "precious\n");
  EXPECT_FALSE(fs::exists(keep.string() + ".meta.json"));

  // The same through the config's own `output:` key.
  const fs::path keyed = dir.write("keyed.yaml", small_config("keep.jsonl"));
  const CommandResult k = run_mathpool({"run", keyed.string()});
  EXPECT_EQ(k.exit_code, 2) << describe(k);
  EXPECT_EQ(read_text(keep), "precious\n");
}

TEST(Outputs, AnEmptyExistingFileIsNotRefused) {
  TempDir dir;
  const fs::path config = dir.write("o.yaml", small_config());
  const fs::path out = dir.write("out.jsonl", "");
  const CommandResult r = run_mathpool({"run", config.string(), "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(read_records(out).size(), 6u);
  EXPECT_TRUE(fs::exists(out.string() + ".meta.json")) << "a regular file gets its provenance";
}

TEST(Outputs, ForceReplacesTheFile) {
  TempDir dir;
  const fs::path config = dir.write("o.yaml", small_config());
  const fs::path keep = dir.write("keep.jsonl", "precious\nand a longer second line than any record would be...\n");
  const CommandResult r = run_mathpool({"run", config.string(), "-o", keep.string(), "--force"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto records = read_records(keep);
  ASSERT_EQ(records.size(), 6u) << read_text(keep);
  EXPECT_EQ(records[0]["run"], "echo");
  EXPECT_FALSE(contains(read_text(keep), "precious"));
}

TEST(Outputs, ForceNeverTruncatesWhenTheRunFailsBeforeItsFirstRecord) {
  TempDir dir;
  const fs::path keep = dir.write("keep.jsonl", "precious\n");
  // An analysis no plugin has: the run ends before any task.
  const fs::path unknown = dir.write("unknown.yaml",
                                     "analyses:\n"
                                     "  - name: a\n"
                                     "    analysis: example.nothing\n");
  CommandResult r = run_mathpool({"run", unknown.string(), "-o", keep.string(), "--force"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "unknown analysis 'example.nothing'")) << r.err;
  EXPECT_EQ(read_text(keep), "precious\n");
  // A plugin that cannot be loaded.
  const fs::path broken = dir.write("broken.yaml",
                                    "plugin_path: [" + std::string(NOT_A_PLUGIN) + "]\n"
                                    "analyses:\n"
                                    "  - name: a\n"
                                    "    analysis: example.echo\n");
  r = run_mathpool({"run", broken.string(), "-o", keep.string(), "--force"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, fs::path(NOT_A_PLUGIN).filename().string())) << r.err;
  EXPECT_EQ(read_text(keep), "precious\n");
  EXPECT_FALSE(fs::exists(keep.string() + ".meta.json"));
}

TEST(Outputs, ResumeAndForceTogetherAreAUsageError) {
  TempDir dir;
  const fs::path config = dir.write("o.yaml", small_config());
  const fs::path keep = dir.write("keep.jsonl", "precious\n");
  const CommandResult r = run_mathpool({"run", config.string(), "-o", keep.string(), "--resume", "--force"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, "--resume") && contains(r.err, "--force")) << r.err;
  EXPECT_EQ(read_text(keep), "precious\n");
}

TEST(Outputs, OutputsThatAreNotRegularFilesAreNeverRefusedAndGetNoProvenance) {
  TempDir dir;
  const fs::path config = dir.write("o.yaml", small_config());
  for (int i = 0; i < 2; ++i) {
    const CommandResult r = run_mathpool({"run", config.string(), "-o", "/dev/null"});
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_FALSE(contains(r.err, "provenance")) << r.err;
  }
  EXPECT_FALSE(fs::exists("/dev/null.meta.json"));
  // A regular file, by contrast, is refused the second time.
  const fs::path file = dir.path() / "file.jsonl";
  EXPECT_EQ(run_mathpool({"run", config.string(), "-o", file.string()}).exit_code, 0);
  EXPECT_EQ(run_mathpool({"run", config.string(), "-o", file.string()}).exit_code, 2);

  const fs::path fifo = dir.path() / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string received;
  std::thread reader([&] { received = read_text(fifo); });
  const CommandResult r = run_mathpool({"run", config.string(), "-o", fifo.string()});
  reader.join();
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(lines_of(received).size(), 6u) << received;
  EXPECT_FALSE(fs::exists(fifo.string() + ".meta.json"));
}

TEST(Outputs, ResumeReadsOnlyARegularFile) {
  TempDir dir;
  const fs::path config = dir.write("small.yaml", small_config());
  const auto start = std::chrono::steady_clock::now();
  const CommandResult r = run_mathpool({"run", config.string(), "-o", "/dev/full", "--resume"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, "regular file")) << r.err;
  EXPECT_LT(seconds_since(start), 10.0);
}

// ---------------------------------------------------------------- fields

TEST(Outputs, OutputFieldsChooseTheFieldsAndKeepTheKey) {
  TempDir dir;
  const fs::path config = dir.write("o.yaml", "output_fields: [result]\n" + small_config());
  const CommandResult r = run_mathpool({"run", config.string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto records = parse_records(r.out);
  ASSERT_EQ(records.size(), 6u);
  for (const Value& rec : records) {
    std::set<std::string> keys;
    for (const auto& [key, value] : rec.items()) keys.insert(key);
    EXPECT_EQ(keys, (std::set<std::string>{"run", "task", "repeat", "status", "result"})) << rec.dump();
  }
  EXPECT_EQ(records[5]["result"]["sum"], 5);

  // --fields overrides the config's list.
  const CommandResult f = run_mathpool({"run", config.string(), "--fields", "params,seconds"});
  ASSERT_EQ(f.exit_code, 0) << describe(f);
  const auto narrow = parse_records(f.out);
  ASSERT_EQ(narrow.size(), 6u);
  EXPECT_TRUE(narrow[0].contains("params") && narrow[0].contains("seconds")) << narrow[0].dump();
  EXPECT_FALSE(narrow[0].contains("result") || narrow[0].contains("worker") || narrow[0].contains("analysis"));

  // An empty list keeps only what is always written.
  const CommandResult none = run_mathpool({"run", config.string(), "--fields", ""});
  ASSERT_EQ(none.exit_code, 0) << describe(none);
  EXPECT_EQ(lines_of(none.out)[5], "{\"run\":\"sums\",\"task\":1,\"repeat\":0,\"status\":\"ok\"}") << none.out;
}

TEST(Outputs, UnknownFieldsAreErrorsNamingWhere) {
  TempDir dir;
  const fs::path config = dir.write("o.yaml", small_config());
  CommandResult r = run_mathpool({"run", config.string(), "--fields", "result,colour"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, "--fields") && contains(r.err, "'colour'")) << r.err;

  const fs::path bad = dir.write("bad.yaml", "# fields\noutput_fields: [result, colour]\n" + small_config());
  r = run_mathpool({"run", bad.string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, bad.string() + ":2: key 'output_fields'")) << r.err;
}

TEST(Outputs, ResumeWorksWithFewFieldsAndChecksWhatIsPresent) {
  TempDir dir;
  const fs::path config = dir.write("o.yaml", small_config("out.jsonl"));
  const fs::path out = dir.path() / "out.jsonl";
  ASSERT_EQ(run_mathpool({"run", config.string(), "--fields", "status"}).exit_code, 0);
  auto lines = lines_of(read_text(out));
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0], "{\"run\":\"echo\",\"task\":0,\"repeat\":0,\"status\":\"ok\"}");
  // Keep three records; resume runs the other three.
  { std::ofstream(out, std::ios::trunc) << lines[0] << '\n' << lines[2] << '\n' << lines[5] << '\n'; }
  const CommandResult r = run_mathpool({"run", config.string(), "--fields", "status", "--resume"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(lines_of(read_text(out)).size(), 6u) << read_text(out);

  // With params present, resume checks them: another config's params are refused.
  { std::ofstream(out, std::ios::trunc) << "{\"run\":\"echo\",\"task\":1,\"repeat\":0,\"params\":{\"x\":9},\"status\":\"ok\"}\n"; }
  const CommandResult other = run_mathpool({"run", config.string(), "--resume"});
  EXPECT_EQ(other.exit_code, 2) << describe(other);
  EXPECT_TRUE(contains(other.err, out.string() + ":1:") && contains(other.err, "params")) << other.err;
}

// ---------------------------------------------------------------- zstd

TEST(Outputs, AZstdOutputHoldsTheRecordsOfAPlainRun) {
  TempDir dir;
  const fs::path config = dir.write("o.yaml", small_config());
  const fs::path plain = dir.path() / "plain.jsonl", packed = dir.path() / "packed.jsonl.zst";
  ASSERT_EQ(run_mathpool({"run", config.string(), "-o", plain.string(), "--fields", "params,result"}).exit_code, 0);
  const CommandResult r = run_mathpool({"run", config.string(), "-o", packed.string(), "--fields", "params,result"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const std::string data = read_text(packed);
  ASSERT_GE(data.size(), 4u);
  EXPECT_EQ(data.substr(0, 4), std::string("\x28\xb5\x2f\xfd")) << "zstd's magic number";
  EXPECT_EQ(zstd_frames(packed), read_text(plain));
  // Existing compressed outputs are protected like plain ones.
  const CommandResult again = run_mathpool({"run", config.string(), "-o", packed.string()});
  EXPECT_EQ(again.exit_code, 2) << describe(again);
}

TEST(Outputs, ResumeDropsATruncatedLastFrameAndAppendsANewFrame) {
  TempDir dir;
  const fs::path config = dir.write("o.yaml", small_config("out.jsonl.zst"));
  const fs::path plain = dir.path() / "plain.jsonl", packed = dir.path() / "out.jsonl.zst";
  ASSERT_EQ(run_mathpool({"run", config.string(), "-o", plain.string()}).exit_code, 0);
  const auto clean = read_records(plain);
  const auto lines = lines_of(read_text(plain));
  // A killed writer: one complete frame (three records), then half of a second.
  std::string first, second;
  for (int i = 0; i < 3; ++i) first += lines[i] + "\n";
  for (int i = 3; i < 5; ++i) second += lines[i] + "\n";
  const std::string cut = compress_frame(second);
  { std::ofstream(packed, std::ios::binary | std::ios::trunc) << compress_frame(first) << cut.substr(0, cut.size() / 2); }

  const CommandResult r = run_mathpool({"run", config.string(), "--resume"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  int frames = 0;
  const std::string text = zstd_frames(packed, &frames);
  EXPECT_EQ(frames, 2) << "the kept frame and the resumed run's";
  const auto resumed = parse_records(text);
  ASSERT_EQ(resumed.size(), clean.size()) << text;
  for (std::size_t i = 0; i < clean.size(); ++i) {
    EXPECT_EQ(resumed[i]["run"], clean[i]["run"]);
    EXPECT_EQ(resumed[i]["task"], clean[i]["task"]);
    EXPECT_EQ(resumed[i]["result"], clean[i]["result"]);
  }
}

TEST(Outputs, AKilledZstdRunKeepsItsFramesAndResumes) {
  TempDir dir;
  const fs::path config = dir.write("slow.yaml",
                                    "output: out.jsonl.zst\n"
                                    "pool: {workers: 2}\n"
                                    "plugin_path: [" + kTestkit + "]\n"
                                    "analyses:\n"
                                    "  - name: s\n"
                                    "    analysis: testkit.sleep\n"
                                    "    params: {ms: 50}\n"
                                    "    repeat: 300\n");
  const fs::path packed = dir.path() / "out.jsonl.zst";
  const int pid = start_mathpool({"run", config.string()}, dir.path() / "log");
  std::this_thread::sleep_for(4s);
  ::kill(pid, SIGKILL);
  wait_exit(pid);
  wait_gone("mathpool-worker");
  int frames = 0;
  const auto kept = lines_of(zstd_frames(packed, &frames));
  EXPECT_GE(frames, 1);
  EXPECT_GE(kept.size(), 20u) << "a frame ends every second: most of ~4 s of records survive";
  EXPECT_LT(kept.size(), 300u) << "the run was killed mid-way";
  const CommandResult r = run_mathpool({"run", config.string(), "--resume", "--workers", "4"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto records = parse_records(zstd_frames(packed));
  ASSERT_EQ(records.size(), 300u);
  std::set<int> repeats;
  for (const Value& rec : records) repeats.insert(rec["repeat"].get<int>());
  EXPECT_EQ(repeats.size(), 300u);
}

// ---------------------------------------------------------------- written to hurt

TEST(Outputs, AnImpossibleResumeRecordIsAFileLineError) {
  TempDir dir;
  const fs::path config = dir.write("huge.yaml",
                                    "analyses:\n"
                                    "  - name: huge\n"
                                    "    analysis: example.echo\n"
                                    "    sweep: {x: {range: [0, 4611686018427387904]}}\n");
  const fs::path out = dir.write("out.jsonl",
                                 "{\"run\":\"huge\",\"analysis\":\"example.echo\",\"task\":0,\"repeat\":0,"
                                 "\"params\":{\"x\":0},\"status\":\"ok\",\"result\":{\"x\":0}}\n"
                                 "{\"run\":\"huge\",\"analysis\":\"example.echo\",\"task\":1000000000000000000,"
                                 "\"repeat\":0,\"params\":{\"x\":1000000000000000000},\"status\":\"ok\",\"result\":{}}\n");
  const CommandResult r = run_mathpool({"run", config.string(), "-o", out.string(), "--resume"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  expect_one_error_line(r);
  EXPECT_TRUE(contains(r.err, out.string() + ":2:")) << r.err;
  EXPECT_FALSE(contains(r.err, "bad_alloc")) << r.err;
}
