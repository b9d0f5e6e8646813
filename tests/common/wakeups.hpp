// wakeups.hpp: counting how often processes wake up, for the tests and the
// benchmarks of idle pools. Header-only; Linux /proc.
#pragma once

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace mathpool::wakeups {

// Context switches (voluntary and involuntary) of every thread of `pid` so
// far, leaving out the threads `except_tids` (the caller's own, which sleeps
// to measure). A thread or process that is gone counts nothing.
inline long context_switches(int pid, const std::vector<int>& except_tids = {}) {
  long total = 0;
  std::error_code ec;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
    const std::string tid = task.path().filename().string();
    if (std::any_of(except_tids.begin(), except_tids.end(), [&](int t) { return std::to_string(t) == tid; }))
      continue;
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
inline long context_switches_of(const std::vector<int>& pids) {
  long total = 0;
  for (int pid : pids)
    if (pid > 0) total += context_switches(pid);
  return total;
}

}  // namespace mathpool::wakeups
