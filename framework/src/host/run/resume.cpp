#include "resume.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>

#include <fmt/format.h>

#include "record.hpp"

namespace mathpool::detail {
namespace {

// Reads the digits at `at` (advancing it); false when there are none.
bool read_number(std::string_view line, std::size_t& at, std::uint64_t& value) {
  const auto [end, ec] = std::from_chars(line.data() + at, line.data() + line.size(), value);
  if (ec != std::errc()) return false;
  at = std::size_t(end - line.data());
  return true;
}

// Says why a line is not one of this config's records.
[[noreturn]] void refuse(const RunConfig& config, const std::filesystem::path& output, int number,
                         std::string_view line) {
  const auto where = fmt::format("{}:{}", output.string(), number);
  const Value record = Value::parse(line, nullptr, false);
  if (record.is_discarded() || !record.is_object() || !record.contains("run") || !record["run"].is_string() ||
      !record.contains("analysis") || !record.contains("task") || !record.contains("repeat"))
    throw ConfigError(where + ": not a result record; refusing to resume into this file");
  const std::string run = record["run"].get<std::string>();
  for (const AnalysisEntry& entry : config.analyses)
    if (entry.name == run)
      throw ConfigError(fmt::format("{}: the record of run '{}' (analysis {}) does not belong to this config, "
                                    "whose run '{}' is analysis {}; refusing to resume into this file",
                                    where, shown(run), record["analysis"].dump(), shown(run), entry.analysis));
  throw ConfigError(fmt::format("{}: the record of run '{}' does not belong to this config (no entry of that "
                                "name); refusing to resume into this file",
                                where, shown(run)));
}

}  // namespace

bool FinishedTasks::insert(std::size_t entry, std::uint64_t index, std::size_t status) {
  auto& bits = bits_[entry];
  if (index / 64 >= bits.size()) bits.resize(index / 64 + 1);
  const std::uint64_t mask = std::uint64_t(1) << (index % 64);
  if (bits[index / 64] & mask) return false;
  bits[index / 64] |= mask;
  ++count_;
  ++statuses_[entry][status];
  return true;
}

void FinishedTasks::fill(const std::vector<std::string>& names, RunSummary& summary) const {
  fill_counts(names, statuses_, summary.skipped_by_status, summary.skipped_by_run);
}

FinishedTasks scan_for_resume(const RunConfig& config, const std::filesystem::path& output) {
  FinishedTasks finished(config.analyses.size());
  // A record names its run first; the fields after it are checked where
  // present (output_fields may have left some out).
  std::vector<std::string> runs, analyses;
  for (const AnalysisEntry& entry : config.analyses) {
    std::string run = "{\"run\":";
    append_json_string(run, entry.name);
    runs.push_back(run + ',');
    std::string analysis = "\"analysis\":";
    append_json_string(analysis, entry.analysis);
    analyses.push_back(analysis + ',');
  }
  // The finished tasks are a bitmap as long as the largest index: a record
  // claiming an index beyond what a run could have written into this file
  // (one task per byte, at least 2^29) is refused, not sized for; the bitmap
  // stays within an eighth of the file's size (64 MiB for small files).
  std::uint64_t limit = 0;
  try {
    limit = std::max<std::uint64_t>(std::uint64_t(1) << 29, record_bytes(output));
  } catch (const std::runtime_error& e) {
    throw ConfigError(e.what());
  }

  std::array<std::string, kStatuses> statuses;  // as the records have them: "ok" and its quotes
  for (std::size_t s = 0; s < kStatuses; ++s) statuses[s] = fmt::format("\"{}\"", kStatusWords[s]);
  std::string expected;
  Bytes params, labels;
  auto check = [&](const std::string& line, int number) {
    std::size_t e = 0;
    while (e < runs.size() && line.compare(0, runs[e].size(), runs[e]) != 0) ++e;
    if (e == runs.size()) refuse(config, output, number, line);
    const AnalysisEntry& entry = config.analyses[e];
    std::size_t at = runs[e].size();
    const auto skip = [&](std::string_view text) {
      if (line.compare(at, text.size(), text) != 0) return false;
      at += text.size();
      return true;
    };
    if (!skip(analyses[e]) && line.compare(at, 11, "\"analysis\":") == 0) refuse(config, output, number, line);
    std::uint64_t task = 0, repeat = 0;
    if (!skip("\"task\":") || !read_number(line, at, task) || !skip(",\"repeat\":") ||
        !read_number(line, at, repeat) || !skip(",") || line.empty() || line.back() != '}')
      refuse(config, output, number, line);
    if (task >= entry.parameter_sets() || repeat >= std::uint64_t(entry.repeat))
      throw ConfigError(fmt::format("{}:{}: run '{}' has no task {} repeat {} in this config ({} tasks, repeat {}); "
                                    "refusing to resume into this file",
                                    output.string(), number, entry.name, task, repeat, entry.parameter_sets(),
                                    entry.repeat));
    const std::uint64_t index = task * std::uint64_t(entry.repeat) + repeat;
    if (index >= limit)
      throw ConfigError(fmt::format("{}:{}: run '{}' task {} repeat {} is beyond any record a run could have written "
                                    "into this file; refusing to resume into this file",
                                    output.string(), number, entry.name, task, repeat));
    const bool has_params = line.compare(at, 9, "\"params\":") == 0;
    if (has_params || !entry.labels.empty()) {
      params.clear();
      labels.clear();
      entry.encode_task(task, params, labels);
    }
    if (has_params) {
      expected = "\"params\":";
      append_msgpack_json(expected, params);
      expected += ',';
      if (!skip(expected))
        throw ConfigError(fmt::format("{}:{}: the record of run '{}' task {} repeat {} has other params than this "
                                      "config's task; refusing to resume into this file",
                                      output.string(), number, entry.name, task, repeat));
    }
    // Labels (an entry's `labels:`) come next, where the fields keep them.
    if (line.compare(at, 9, "\"labels\":") == 0) {
      expected = "\"labels\":";
      if (!labels.empty()) append_msgpack_json(expected, labels);
      expected += ',';
      if (labels.empty() || !skip(expected))
        throw ConfigError(fmt::format("{}:{}: the record of run '{}' task {} repeat {} has other labels than this "
                                      "config's task; refusing to resume into this file",
                                      output.string(), number, entry.name, task, repeat));
    }
    if (!skip("\"status\":")) refuse(config, output, number, line);
    std::size_t status = 0;
    while (status < kStatuses && line.compare(at, statuses[status].size(), statuses[status]) != 0) ++status;
    if (status == kStatuses)
      throw ConfigError(fmt::format("{}:{}: the record of run '{}' task {} repeat {} has the status {}, not ok, "
                                    "error, timeout, crashed or memory; refusing to resume into this file",
                                    output.string(), number, entry.name, task, repeat,
                                    shown(std::string_view(line).substr(at, std::min<std::size_t>(
                                                                               line.find_first_of(",}", at) - at, 40)))));
    if (!finished.insert(e, index, status))
      throw ConfigError(fmt::format("{}:{}: a second record of run '{}' task {} repeat {} (a run writes one record "
                                    "per task); refusing to resume into this file",
                                    output.string(), number, entry.name, task, repeat));
  };
  try {
    for_each_record_line(output, check);
  } catch (const ConfigError&) {
    throw;
  } catch (const std::runtime_error& e) {
    throw ConfigError(e.what());
  }
  return finished;
}

}  // namespace mathpool::detail
