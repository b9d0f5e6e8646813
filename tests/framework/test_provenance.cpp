// End-to-end tests of provenance: `mathpool --version`, FILE.meta.json beside
// a regular output file (versions, config and CSV hashes, command line,
// hosts, times, counts), and the warnings of a resumed run whose config or
// analyses changed.
#include <fcntl.h>
#include <sys/stat.h>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "hash_cache.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using mathpool::Value;
using namespace mathpool::test;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stdout (first 2000)\n" + r.out.substr(0, 2000) +
         "\n--- stderr\n" + r.err;
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  std::string hex;
  char two[3];
  for (unsigned int i = 0; i < size; ++i) {
    std::snprintf(two, sizeof two, "%02x", digest[i]);
    hex += two;
  }
  return hex;
}

Value read_json(const fs::path& file) { return Value::parse(read_text(file), nullptr, false); }

const std::string kConfig =
    "# a comment\n"
    "output: out.jsonl\n"
    "pool: {workers: 2}\n"
    "analyses:\n"
    "  - name: echo\n"
    "    analysis: example.echo\n"
    "    sweep: {x: [1, 2, 3, 4]}\n"
    "  - name: sums\n"
    "    analysis: example.sum\n"
    "    sweep: {values: {csv: regs.csv}}\n";

// Cuts the last two records off `file`, as a killed run would leave it.
void cut_two(const fs::path& file) {
  std::string text = read_text(file);
  for (int i = 0; i < 2; ++i) text.erase(text.rfind('\n', text.size() - 2) + 1);
  std::ofstream(file, std::ios::trunc) << text;
}

}  // namespace

TEST(Provenance, VersionNamesTheRelease) {
  const CommandResult r = run_mathpool({"--version"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(std::regex_match(r.out, std::regex("mathpool [0-9]+\\.[0-9]+\\.[0-9]+\n"))) << r.out;
}

TEST(Provenance, AMetaFileBesideTheOutputTracesTheRun) {
  TempDir dir;
  const fs::path csv = dir.write("regs.csv", "1,1\n1,0,1\n");
  const fs::path config = dir.write("run.yaml", kConfig);
  const CommandResult r = run_mathpool({"run", config.string()});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const fs::path meta_file = dir.path() / "out.jsonl.meta.json";
  ASSERT_TRUE(fs::exists(meta_file)) << describe(r);
  const Value meta = read_json(meta_file);
  ASSERT_TRUE(meta.is_object()) << read_text(meta_file);

  const std::string version = run_mathpool({"--version"}).out;
  EXPECT_EQ("mathpool " + meta.value("mathpool", "") + "\n", version);
  EXPECT_EQ(meta["config"]["path"], fs::absolute(config).string());
  EXPECT_EQ(meta["config"]["sha256"], sha256_hex(kConfig));
  ASSERT_EQ(meta["inputs"].size(), 1u) << meta.dump(2);
  EXPECT_EQ(meta["inputs"][0]["sha256"], sha256_hex("1,1\n1,0,1\n"));
  // The command line as given.
  ASSERT_TRUE(meta["command"].is_array());
  EXPECT_EQ(meta["command"][1], "run");
  EXPECT_EQ(meta["command"][2], config.string());
  // Each analysis the config uses, with its version and plugin; nothing else.
  ASSERT_EQ(meta["analyses"].size(), 2u) << meta.dump(2);
  for (const Value& a : meta["analyses"]) {
    EXPECT_TRUE(a["name"] == "example.echo" || a["name"] == "example.sum") << a.dump();
    EXPECT_FALSE(a.value("version", "").empty()) << a.dump();
    EXPECT_TRUE(fs::exists(a.value("plugin", ""))) << a.dump();
    EXPECT_EQ(a.value("plugin_sha256", "").size(), 64u) << a.dump();
  }
  ASSERT_GE(meta["hosts"].size(), 1u);
  EXPECT_FALSE(meta["hosts"][0].get<std::string>().empty());
  const std::regex iso("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z");
  EXPECT_TRUE(std::regex_match(meta.value("started", ""), iso)) << meta.dump(2);
  EXPECT_TRUE(std::regex_match(meta.value("ended", ""), iso)) << meta.dump(2);
  EXPECT_EQ(meta["state"], "complete");
  EXPECT_EQ(meta["tasks"]["by_status"], (Value{{"ok", 6}}));
  EXPECT_EQ(meta["tasks"]["by_run"]["sums"], (Value{{"ok", 2}}));
  EXPECT_TRUE(contains(r.err, "provenance: " + meta_file.string())) << r.err;
}

TEST(Provenance, StandardOutputGetsNoMetaFile) {
  TempDir dir;
  dir.write("regs.csv", "1,1\n");
  const fs::path config = dir.write("run.yaml", kConfig);
  const CommandResult r = run_mathpool({"run", config.string(), "-o", "-"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  for (const auto& entry : fs::directory_iterator(dir.path()))
    EXPECT_FALSE(contains(entry.path().string(), ".meta.json")) << entry.path();
}

TEST(Provenance, ResumeWarnsWhenTheConfigChangedButRuns) {
  TempDir dir;
  dir.write("regs.csv", "1,1\n1,0,1\n");
  const fs::path config = dir.write("run.yaml", kConfig);
  const fs::path out = dir.path() / "out.jsonl";
  ASSERT_EQ(run_mathpool({"run", config.string()}).exit_code, 0);
  cut_two(out);
  // A fixed typo in a comment must not block a week-long sweep.
  dir.write("run.yaml", "# a comment, spelt right\n" + kConfig.substr(kConfig.find('\n') + 1));
  const CommandResult r = run_mathpool({"run", config.string(), "--resume"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(std::regex_search(r.err, std::regex("mathpool: warning: the config .*run.yaml has changed"))) << r.err;
  EXPECT_EQ(read_records(out).size(), 6u);
  const Value meta = read_json(dir.path() / "out.jsonl.meta.json");
  EXPECT_EQ(meta["tasks"]["already_in_output"], 4);
  EXPECT_EQ(meta["tasks"]["ran"], 2);
  ASSERT_EQ(meta["history"].size(), 1u) << "the first run's provenance is kept";
  EXPECT_EQ(meta["history"][0]["config"]["sha256"], sha256_hex(kConfig));
  EXPECT_NE(meta["config"]["sha256"], sha256_hex(kConfig));
}

TEST(Provenance, ResumeWarnsWhenAnAnalysisVersionDiffers) {
  TempDir dir;
  dir.write("regs.csv", "1,1\n1,0,1\n");
  const fs::path config = dir.write("run.yaml", kConfig);
  const fs::path out = dir.path() / "out.jsonl", meta_file = dir.path() / "out.jsonl.meta.json";
  ASSERT_EQ(run_mathpool({"run", config.string()}).exit_code, 0);
  cut_two(out);
  Value meta = read_json(meta_file);
  for (Value& a : meta["analyses"])
    if (a["name"] == "example.sum") a["version"] = "0.0.1-old";
  std::ofstream(meta_file, std::ios::trunc) << meta.dump();
  const CommandResult r = run_mathpool({"run", config.string(), "--resume"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "mathpool: warning: analysis example.sum is version ")) << r.err;
  EXPECT_TRUE(contains(r.err, "0.0.1-old")) << r.err;
  EXPECT_FALSE(contains(r.err, "example.echo")) << r.err;
  EXPECT_EQ(read_records(out).size(), 6u);
}

// The plugins' hashes remembered between runs (hash_cache.hpp): checked
// against OpenSSL's one-shot digest of the bytes, an oracle apart from the
// streaming code under test.
TEST(HashCache, ASettledFileIsRememberedAndItsEntryIsWhatLaterCallsRead) {
  TempDir dir;
  const std::string bytes(300000, 'p');
  const fs::path file = dir.write("plugin.so", bytes), cache = dir.path() / "cache";
  const std::time_t later = std::time(nullptr) + 10;  // as if the file had been built long ago
  EXPECT_EQ(mathpool::detail::cached_sha256_file(file, cache, later), sha256_hex(bytes));
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(cache)) entries.push_back(e.path());
  ASSERT_EQ(entries.size(), 1u) << "one entry, no temporary file left";
  EXPECT_EQ(read_text(entries[0]), sha256_hex(bytes) + "\n");
  // The entry is what a later call returns: planted, it is believed.
  const std::string planted(64, 'a');
  std::ofstream(entries[0], std::ios::trunc) << planted << '\n';
  EXPECT_EQ(mathpool::detail::cached_sha256_file(file, cache, later), planted);
}

TEST(HashCache, AChangedFileIsHashedAgain) {
  TempDir dir;
  const fs::path file = dir.write("plugin.so", "first"), cache = dir.path() / "cache";
  const std::time_t later = std::time(nullptr) + 10;
  ASSERT_EQ(mathpool::detail::cached_sha256_file(file, cache, later), sha256_hex("first"));
  for (const auto& e : fs::directory_iterator(cache)) std::ofstream(e.path(), std::ios::trunc) << std::string(64, 'b');
  // Same size, rewritten in place: the change time moves, so the key does.
  { std::ofstream(file, std::ios::in | std::ios::out) << "FIRST"; }
  EXPECT_EQ(mathpool::detail::cached_sha256_file(file, cache, later + 10), sha256_hex("FIRST"));
}

TEST(HashCache, AFileChangedJustNowIsNotRemembered) {
  TempDir dir;
  const fs::path file = dir.write("plugin.so", "fresh"), cache = dir.path() / "cache";
  EXPECT_EQ(mathpool::detail::cached_sha256_file(file, cache), sha256_hex("fresh"));
  EXPECT_FALSE(fs::exists(cache) && !fs::is_empty(cache)) << "a write in the same clock tick would go unseen";
}

TEST(HashCache, ABadEntryNoFolderOrNoFileIsOnlyNoCache) {
  TempDir dir;
  const fs::path file = dir.write("plugin.so", "bytes"), cache = dir.path() / "cache";
  const std::time_t later = std::time(nullptr) + 10;
  ASSERT_EQ(mathpool::detail::cached_sha256_file(file, cache, later), sha256_hex("bytes"));
  for (const auto& e : fs::directory_iterator(cache)) std::ofstream(e.path(), std::ios::trunc) << "not a digest\n";
  EXPECT_EQ(mathpool::detail::cached_sha256_file(file, cache, later), sha256_hex("bytes"));
  EXPECT_EQ(mathpool::detail::cached_sha256_file(file, "", later), sha256_hex("bytes"));
  const fs::path blocked = dir.write("a-file", "x") / "cache";  // a folder that cannot be made
  EXPECT_EQ(mathpool::detail::cached_sha256_file(file, blocked, later), sha256_hex("bytes"));
  EXPECT_EQ(mathpool::detail::cached_sha256_file(dir.path() / "missing.so", cache, later), "");
}

// Every plugin build adds an entry: the folder is kept to kHashCacheEntries,
// the entries written longest ago going first, and so are temporary files
// that a killed writer left.
TEST(HashCache, TheFolderKeepsItsNewestEntriesUpToItsLimit) {
  TempDir dir;
  const fs::path cache = dir.path() / "cache";
  fs::create_directories(cache);
  const std::size_t limit = mathpool::detail::kHashCacheEntries;
  const auto plant = [&](const std::string& name, std::time_t written) {
    const fs::path entry = cache / name;
    std::ofstream(entry) << std::string(64, 'c') << '\n';
    const timespec times[2] = {{written, 0}, {written, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, entry.c_str(), times, 0), 0);
  };
  const std::time_t now = std::time(nullptr);
  for (std::size_t i = 0; i < limit; ++i) plant(fmt::format("old-{:04}", i), now - 100000 + std::time_t(i));
  plant(".left-by-a-killed-writer.123.tmp", now - 100000);
  const fs::path file = dir.write("plugin.so", "new build");
  const std::time_t later = now + 10;
  ASSERT_EQ(mathpool::detail::cached_sha256_file(file, cache, later), sha256_hex("new build"));
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(cache)) names.insert(e.path().filename());
  EXPECT_LE(names.size(), limit) << "pruned to its limit";
  EXPECT_GE(names.size(), limit / 2) << "not emptied";
  EXPECT_FALSE(names.count("old-0000")) << "the oldest go first";
  EXPECT_TRUE(names.count(fmt::format("old-{:04}", limit - 1))) << "the newest stay";
  EXPECT_FALSE(names.count(".left-by-a-killed-writer.123.tmp"));
  // The new entry is among those kept.
  bool found = false;
  for (const auto& e : fs::directory_iterator(cache)) found = found || read_text(e.path()) == sha256_hex("new build") + "\n";
  EXPECT_TRUE(found);
}
