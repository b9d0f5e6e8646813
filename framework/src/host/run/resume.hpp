// resume.hpp: what an output file already holds, for `--resume`.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <filesystem>
#include <vector>

#include "mathpool/config.hpp"
#include "mathpool/run.hpp"
#include "run_report.hpp"

namespace mathpool::detail {

// The tasks of a config that have records: one bitmap per entry over
// task * repeat + repeat, as long as its largest finished index (so a run of
// ten million tasks costs about a megabyte). Not thread-safe.
class FinishedTasks {
 public:
  explicit FinishedTasks(std::size_t entries) : bits_(entries), statuses_(entries) {}
  bool contains(std::size_t entry, std::uint64_t index) const noexcept {
    const auto& bits = bits_[entry];
    return index / 64 < bits.size() && (bits[index / 64] >> (index % 64) & 1);
  }
  // Adds a record of status `status` (kStatusWords' index); false, adding
  // nothing, when the task has one already.
  bool insert(std::size_t entry, std::uint64_t index, std::size_t status);
  std::uint64_t count() const noexcept { return count_; }
  // The records by status and by entry, as a summary counts them
  // (skipped_by_status, skipped_by_run; `names` are the entries' names).
  void fill(const std::vector<std::string>& names, RunSummary& summary) const;

 private:
  std::vector<std::vector<std::uint64_t>> bits_;
  StatusCounts statuses_;
  std::uint64_t count_ = 0;
};

// Reads `output` for a resumed run of `config`. Every record must be one of
// this config's tasks with the same analysis and parameters, with a status,
// and the only record of its task; otherwise throws ConfigError naming the
// file and line. A partial last line (a killed
// writer) is cut off the file so appending continues cleanly. A missing
// file holds nothing.
FinishedTasks scan_for_resume(const RunConfig& config, const std::filesystem::path& output);

}  // namespace mathpool::detail
