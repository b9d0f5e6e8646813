#include "resume.hpp"

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
                                    where, run, record["analysis"].dump(), run, entry.analysis));
  throw ConfigError(fmt::format("{}: the record of run '{}' does not belong to this config (no entry of that "
                                "name); refusing to resume into this file",
                                where, run));
}

}  // namespace

void FinishedTasks::insert(std::size_t entry, std::uint64_t index) {
  auto& bits = bits_[entry];
  if (index / 64 >= bits.size()) bits.resize(index / 64 + 1);
  const std::uint64_t mask = std::uint64_t(1) << (index % 64);
  if (!(bits[index / 64] & mask)) ++count_;
  bits[index / 64] |= mask;
}

FinishedTasks scan_for_resume(const RunConfig& config, const std::filesystem::path& output) {
  FinishedTasks finished(config.analyses.size());
  std::vector<std::string> prefixes;
  for (const AnalysisEntry& entry : config.analyses) prefixes.push_back(record_prefix(entry.name, entry.analysis));

  std::string expected;
  Bytes params;
  auto check = [&](const std::string& line, int number) {
    // A record starts with its entry's prefix, then task and repeat: the
    // expected head for those must match the line byte for byte.
    std::size_t e = 0;
    while (e < prefixes.size() && line.compare(0, prefixes[e].size(), prefixes[e]) != 0) ++e;
    if (e == prefixes.size()) refuse(config, output, number, line);
    const AnalysisEntry& entry = config.analyses[e];
    std::size_t at = prefixes[e].size();
    std::uint64_t task = 0, repeat = 0;
    constexpr std::string_view kRepeat = ",\"repeat\":";
    if (!read_number(line, at, task) || line.compare(at, kRepeat.size(), kRepeat) != 0)
      refuse(config, output, number, line);
    at += kRepeat.size();
    if (!read_number(line, at, repeat) || line.empty() || line.back() != '}') refuse(config, output, number, line);
    if (task >= entry.parameter_sets() || repeat >= std::uint64_t(entry.repeat))
      throw ConfigError(fmt::format("{}:{}: run '{}' has no task {} repeat {} in this config ({} tasks, repeat {}); "
                                    "refusing to resume into this file",
                                    output.string(), number, entry.name, task, repeat, entry.parameter_sets(),
                                    entry.repeat));
    params.clear();
    entry.encode_params(task, params);
    expected.clear();
    append_record_head(expected, prefixes[e], task, int(repeat), params);
    if (line.compare(0, expected.size(), expected) != 0)
      throw ConfigError(fmt::format("{}:{}: the record of run '{}' task {} repeat {} has other params than this "
                                    "config's task; refusing to resume into this file",
                                    output.string(), number, entry.name, task, repeat));
    finished.insert(e, task * std::uint64_t(entry.repeat) + repeat);
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
