// run_entry.hpp: one entry of a run as a worker sees it: how each of its
// tasks' parameters are made (its sweep, with its data) and how each of its
// records begins. The host makes it once from the config and sends each
// worker its wire form once; tasks then travel as index ranges (entry, first
// index, count) and the worker writes their records (protocol.hpp, run_range).
//
// A task's index counts repeats: index = task * repeat + repeat number.
// Immutable after construction; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "record_fields.hpp"
#include "mathpool/config.hpp"

namespace mathpool::detail {

// The run entries a worker holds: the last kKeptEntries the host sent it. The
// host keeps the same count of what it sent each worker, so both agree on
// what is held without a message (protocol.hpp, entry).
inline constexpr std::size_t kKeptEntries = 16;

class RunEntry {
 public:
  // `id` names the entry to workers: unique among the entries a host process makes.
  RunEntry(std::uint64_t id, const AnalysisEntry& entry, const RecordFields& fields);
  // A worker's copy, from the host's wire(). Throws ProtocolError on bytes
  // that are not one. With `keep_wire`, the copy's wire() is `wire` (an MPI
  // node's agent passes the entry on to its own workers).
  static RunEntry decode(std::uint64_t id, std::string_view wire, bool keep_wire = false);

  std::uint64_t id() const noexcept { return id_; }
  const std::string& analysis() const noexcept { return entry_.analysis; }
  const std::string& run() const noexcept { return entry_.name; }
  const RecordFields& fields() const noexcept { return fields_; }
  // The bytes a worker decodes (empty in a worker's own copy unless kept).
  const std::string& wire() const noexcept { return wire_; }
  // Tasks (parameter sets times repeats).
  std::uint64_t tasks() const noexcept { return tasks_; }
  std::uint64_t task_of(std::uint64_t index) const noexcept { return index / std::uint64_t(entry_.repeat); }
  int repeat_of(std::uint64_t index) const noexcept { return int(index % std::uint64_t(entry_.repeat)); }
  // The parameters of task `index` (a MessagePack map) and its labels (a map, or nothing).
  void encode(std::uint64_t index, std::string& params, std::string& labels) const;
  // What the task's record starts with: its run, analysis, task and repeat,
  // then its parameters and labels.
  void append_head(std::string& out, std::uint64_t index, std::string_view params, std::string_view labels) const;
  // What the host checks of a record a worker wrote for task `index`: it
  // begins as that task's record must (run, analysis, task, repeat) and is
  // one JSON object (json_check.hpp). Throws ProtocolError saying which fails.
  void check_record(std::uint64_t index, std::string_view line) const;

 private:
  RunEntry() = default;
  std::uint64_t id_ = 0;
  AnalysisEntry entry_;  // name, analysis, params, sweep, repeat
  RecordFields fields_;
  std::string prefix_;
  std::uint64_t tasks_ = 0;
  std::string wire_;
};

}  // namespace mathpool::detail
