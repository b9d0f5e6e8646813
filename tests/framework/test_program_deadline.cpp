// The tests' own guard: a program a test starts never outlives its test.
// (A hung mpirun, started by a test ctest had killed at 120 s, ran on with its
// ranks for 53 minutes of a CI run.)
#include <signal.h>

#include <chrono>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <gtest/gtest-spi.h>

#include "test_support.hpp"

namespace mathpool::test {
namespace {

// A shell that ignores SIGTERM and waits on two sleeps that ignore it too:
// one in its process group, one in a session of its own. Prints their pids.
const std::vector<std::string> kStubbornTree = {
    "-c", "trap '' TERM; sleep 300 & echo $!; setsid sleep 300 & echo $!; wait"};

bool gone_within(pid_t pid, std::chrono::seconds limit) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < give_up) {
    const char state = process_state(pid);
    if (state == 0 || state == 'Z') return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::vector<pid_t> pids_in(const std::string& text) {
  std::istringstream in(text);
  std::vector<pid_t> pids;
  for (pid_t pid; in >> pid;) pids.push_back(pid);
  return pids;
}

TEST(ProgramDeadline, ARunProgramPastItsDeadlineIsEndedWithWhatItStartedAndFailsTheTest) {
  static CommandResult result;
  const auto started = std::chrono::steady_clock::now();
  EXPECT_NONFATAL_FAILURE(result = run_program("/bin/sh", kStubbornTree, std::chrono::seconds(1)),
                          "did not end within 1 s");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(result.exit_code, 128 + SIGKILL) << "SIGTERM is ignored: it takes SIGKILL";
  EXPECT_LT(took, 15.0);
  const std::vector<pid_t> sleeps = pids_in(result.out);
  ASSERT_EQ(sleeps.size(), 2u) << result.out;
  for (pid_t pid : sleeps) EXPECT_TRUE(gone_within(pid, std::chrono::seconds(5))) << "sleep " << pid << " lives on";
}

TEST(ProgramDeadline, AStartedProgramPastItsDeadlineIsEndedByWaitExit) {
  TempDir dir;
  const std::filesystem::path log = dir.path() / "log";
  const int pid = start_program("/bin/sh", kStubbornTree, log);
  static int code;
  static int waited;
  waited = pid;
  EXPECT_NONFATAL_FAILURE(code = wait_exit(waited, std::chrono::seconds(1)), "did not end within 1 s");
  EXPECT_EQ(code, 128 + SIGKILL);
  const std::vector<pid_t> sleeps = pids_in(read_text(log));
  ASSERT_EQ(sleeps.size(), 2u) << read_text(log);
  for (pid_t sleep : sleeps) EXPECT_TRUE(gone_within(sleep, std::chrono::seconds(5))) << "sleep " << sleep << " lives on";
}

// The program ends on SIGTERM; a child in a session of its own ignores it and
// is killed once the program has ended, at once. (The first version reaped
// the program in one check and missed it in the next: the child lived on,
// and the test waited 5 s more.)
TEST(ProgramDeadline, WhatAProgramEndedBySigtermLeavesBehindIsKilledAtOnce) {
  static CommandResult result;
  const auto started = std::chrono::steady_clock::now();
  EXPECT_NONFATAL_FAILURE(
      result = run_program("/bin/sh", {"-c", "setsid sh -c \"trap '' TERM; sleep 300\" & echo $!; sleep 300"},
                           std::chrono::seconds(1)),
      "did not end within 1 s");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(result.exit_code, 128 + SIGTERM);
  EXPECT_LT(took, 4.0);
  const std::vector<pid_t> left = pids_in(result.out);
  ASSERT_EQ(left.size(), 1u) << result.out;
  EXPECT_TRUE(gone_within(left[0], std::chrono::seconds(2))) << "its child " << left[0] << " lives on";
}

TEST(ProgramDeadline, AProgramThatEndsInTimeIsWaitedForAsBefore) {
  const CommandResult r = run_program("/bin/sh", {"-c", "echo out; echo err >&2; exit 7"}, std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
}

}  // namespace
}  // namespace mathpool::test
