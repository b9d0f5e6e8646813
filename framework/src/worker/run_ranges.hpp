// run_ranges.hpp: the worker's side of tasks as index ranges (protocol.hpp:
// entry, run_range, record). The run entries it holds, the range it is
// working through, and the record each of those tasks is answered with.
// Single-threaded, as the worker's task loop is.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "channel.hpp"
#include "run_entry.hpp"
#include "mathpool/plugin.hpp"

namespace mathpool::detail {

// The run entries this worker holds: the last kKeptEntries the host sent
// (run_entry.hpp), as the host counts them. Throws ProtocolError on an entry
// sent twice, bytes that are not one, or a range of an entry not held.
class HeldEntries {
 public:
  void add(const EntryMessage& message);
  const RunEntry& find(std::uint64_t id) const;

 private:
  std::map<std::uint64_t, RunEntry> held_;
  std::deque<std::uint64_t> order_;  // oldest first
};

// The tasks of a run_range not run yet. Each task's parameters are made from
// its index (repeats of a task share them: made once); a request's views
// stay valid until the next call of next().
class ActiveRange {
 public:
  // Throws ProtocolError for a range past the entry's tasks. `entry` must
  // stay held until the range is done (the worker reads no frame meanwhile).
  void start(const RunEntry& entry, const RunRange& range);
  bool active() const noexcept { return left_ > 0; }
  RunRequest next();

 private:
  const RunEntry* entry_ = nullptr;
  std::uint64_t next_id_ = 0, next_index_ = 0, left_ = 0;
  std::string params_, labels_;
  std::uint64_t encoded_task_ = UINT64_MAX;
};

// What this worker's memory errors add (messages.hpp, memory_limit_note):
// set once, by the handshake.
extern std::string memory_error_note;
// A result whose encoding ran out of memory (the worker then retires).
TaskError encoding_out_of_memory();

// Queues the record of a task of a run entry: its whole line, as the run
// writes it, `worker` its process. A result past the protocol's limits
// becomes the task's result_too_large (as in a result frame), one that runs
// out of memory its `memory` error (and `flags` asks to retire).
void queue_record(Channel& channel, const RunRequest& request, double seconds, std::optional<Outcome>& outcome,
                  std::optional<TaskError>& error, std::uint8_t& flags, pid_t worker);

}  // namespace mathpool::detail
