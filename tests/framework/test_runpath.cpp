// No program or library of the build tree or an install looks for libraries
// in the current directory (issue 17, row 13: an empty RUNPATH entry, as in
// `$ORIGIN/../lib:`, means the current directory; CWE-426).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "test_support.hpp"

namespace mathpool::test {
namespace {

namespace fs = std::filesystem;

const fs::path kBuild = BUILD_DIR;

bool is_elf(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F';
}

// Every regular ELF file under `dirs` (recursively; missing folders skipped).
std::vector<fs::path> elf_files(const std::vector<fs::path>& dirs) {
  std::vector<fs::path> files;
  for (const fs::path& dir : dirs) {
    if (!fs::is_directory(dir)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(dir))
      if (entry.is_regular_file() && !entry.is_symlink() && is_elf(entry.path())) files.push_back(entry.path());
  }
  return files;
}

// The RPATH and RUNPATH entries of `file` that are empty or relative: an
// entry must be absolute or start with $ORIGIN. Each problem as one line.
std::string bad_search_paths(const fs::path& file) {
  const CommandResult r = run_program("/usr/bin/readelf", {"-d", "-W", file.string()});
  if (r.exit_code != 0) return fmt::format("{}: readelf failed: {}\n", file.string(), r.err);
  std::string problems;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const bool rpath = line.find("(RPATH)") != std::string::npos;
    if (!rpath && line.find("(RUNPATH)") == std::string::npos) continue;
    const auto open = line.find('['), close = line.rfind(']');
    if (open == std::string::npos || close == std::string::npos || close < open) continue;
    const std::string value = line.substr(open + 1, close - open - 1);
    std::size_t start = 0;
    for (;;) {
      const std::size_t end = std::min(value.find(':', start), value.size());
      const std::string entry = value.substr(start, end - start);
      const bool fine = !entry.empty() && (entry[0] == '/' || entry.rfind("$ORIGIN", 0) == 0 ||
                                           entry.rfind("${ORIGIN}", 0) == 0);
      if (!fine)
        problems += fmt::format("{}: {} [{}] has the entry '{}' ({})\n", file.string(), rpath ? "RPATH" : "RUNPATH",
                                value, entry, entry.empty() ? "empty: the current directory" : "relative");
      if (end == value.size()) break;
      start = end + 1;
    }
  }
  return problems;
}

std::string bad_search_paths(const std::vector<fs::path>& files) {
  std::string problems;
  for (const fs::path& f : files) problems += bad_search_paths(f);
  return problems;
}

// Runs `program args` with `dir` as its working directory, where the planted
// libfmt.so.9 lies; its constructor would create `marker`.
CommandResult run_in(const fs::path& dir, const fs::path& program, const std::string& args) {
  return run_program("/bin/sh", {"-c", fmt::format("cd '{}' && exec '{}' {}", dir.string(), program.string(), args)});
}

class Runpath : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::copy_file(PLANTED_LIBRARY, dir_.path() / "libfmt.so.9");
    marker_ = dir_.path() / "planted-library-ran";
    ::setenv("MATHPOOL_PLANTED_MARKER", marker_.c_str(), 1);
    // The planted library works: loaded on purpose, it leaves its marker.
    const CommandResult probe =
        run_program("/bin/sh", {"-c", fmt::format("cd '{}' && LD_PRELOAD=./libfmt.so.9 /bin/true", dir_.path().string())});
    EXPECT_EQ(probe.exit_code, 0) << probe.err;
    EXPECT_TRUE(fs::exists(marker_)) << "the planted library's constructor did not run when preloaded";
    fs::remove(marker_);
  }
  void TearDown() override { ::unsetenv("MATHPOOL_PLANTED_MARKER"); }

  // Runs each command in the planted directory; none may load the library.
  void expect_never_loaded(const fs::path& mathpool, const fs::path& worker) {
    const CommandResult help = run_in(dir_.path(), mathpool, "--help");
    EXPECT_EQ(help.exit_code, 0) << help.err;
    EXPECT_FALSE(fs::exists(marker_)) << mathpool << " --help loaded libfmt.so.9 from the current directory";
    fs::remove(marker_);
    // The worker program and the plugins, through the host.
    const CommandResult plugins = run_in(dir_.path(), mathpool, "plugins");
    EXPECT_EQ(plugins.exit_code, 0) << plugins.err;
    EXPECT_NE(plugins.out.find("lfsr.cycles"), std::string::npos) << plugins.out;
    EXPECT_FALSE(fs::exists(marker_)) << mathpool << " plugins loaded libfmt.so.9 from the current directory";
    fs::remove(marker_);
    // The worker program on its own (it refuses to run without a host; it
    // must not load the library first).
    const CommandResult alone = run_in(dir_.path(), worker, "");
    EXPECT_NE(alone.err.find("started by a mathpool host only"), std::string::npos) << alone.err;
    EXPECT_FALSE(fs::exists(marker_)) << worker << " loaded libfmt.so.9 from the current directory";
    fs::remove(marker_);
  }

  TempDir dir_;
  fs::path marker_;
};

TEST_F(Runpath, ThePlantedLibraryIsNeverLoadedByTheBuildTree) {
  expect_never_loaded(MATHPOOL_CLI, kBuild / "lib" / "mathpool" / "mathpool-worker");
}

TEST_F(Runpath, NoProgramOrLibraryOfTheBuildTreeHasAnEmptyOrRelativeEntry) {
  const std::vector<fs::path> files = elf_files({kBuild / "bin", kBuild / "lib", kBuild / "plugins"});
  ASSERT_GE(files.size(), 5u) << "mathpool, the worker, the libraries and plugins";
  EXPECT_EQ(bad_search_paths(files), "");
}

// An install (into a temporary prefix): the same checks on what it holds.
TEST_F(Runpath, NoProgramOrLibraryOfAnInstallHasAnEmptyOrRelativeEntry) {
  TempDir prefix;
  const CommandResult install =
      run_program(CMAKE_COMMAND, {"--install", kBuild.string(), "--prefix", prefix.path().string()});
  ASSERT_EQ(install.exit_code, 0) << install.out << install.err;
  const std::vector<fs::path> files = elf_files({prefix.path()});
  ASSERT_GE(files.size(), 5u);
  EXPECT_EQ(bad_search_paths(files), "");
  expect_never_loaded(prefix.path() / "bin" / "mathpool", prefix.path() / "lib" / "mathpool" / "mathpool-worker");
}

}  // namespace
}  // namespace mathpool::test
