// wakeups.hpp: counting how often processes wake up, for the tests and the
// benchmarks of idle pools. Header-only; Linux /proc.
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace mathpool::wakeups {

// Context switches (voluntary and involuntary) of every thread of `pid` so
// far, leaving out thread `except_tid` (the caller's own, which sleeps to
// measure). A thread or process that is gone counts nothing.
inline long context_switches(int pid, int except_tid = 0) {
  long total = 0;
  std::error_code ec;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
    if (task.path().filename() == std::to_string(except_tid)) continue;
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);) {
      long n = 0;
      if (std::sscanf(line.c_str(), "voluntary_ctxt_switches: %ld", &n) == 1 ||
          std::sscanf(line.c_str(), "nonvoluntary_ctxt_switches: %ld", &n) == 1)
        total += n;
    }
  }
  return total;
}

// The sum over several processes (0 entries are skipped).
inline long context_switches(const std::vector<int>& pids, int except_tid = 0) {
  long total = 0;
  for (int pid : pids)
    if (pid > 0) total += context_switches(pid, except_tid);
  return total;
}

}  // namespace mathpool::wakeups
