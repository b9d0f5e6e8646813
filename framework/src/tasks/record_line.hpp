// record_line.hpp: the bytes of a result record, one home for the host and the
// worker. A worker writes its tasks' records with these functions; the host
// writes with them what no worker answered (crashes, time limits, tasks
// routed to other machines). Byte for byte what
// format_record(make_record(...)) writes (mathpool/run.hpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mathpool/value.hpp"
#include "record_fields.hpp"
#include "mathpool/error.hpp"

namespace mathpool::detail {

// `{"run":RUN,"analysis":ANALYSIS,"task":` : the same for every task of an entry.
std::string record_prefix(std::string_view run, std::string_view analysis, const RecordFields& fields = {});
// prefix . TASK ,"repeat": REPEAT ,"params": PARAMS (when the fields keep it),
// and "labels": LABELS , when `labels` (a MessagePack map) is not empty.
void append_record_head(std::string& out, std::string_view prefix, std::uint64_t task, int repeat,
                        std::string_view params, const RecordFields& fields = {}, std::string_view labels = {});
// prefix . TASK ,"repeat": REPEAT , : what every record of that task starts with.
void append_record_key(std::string& out, std::string_view prefix, std::uint64_t task, int repeat);
// The key after its prefix (TASK ,"repeat": REPEAT ,) into `out`: its length.
// Both of the above write it with this, and the host's check compares it in place.
constexpr std::size_t kRecordKeyRestBytes = 48;  // 20 digits, 10 bytes, 10 digits, ','
std::size_t write_record_key_rest(char (&out)[kRecordKeyRestBytes], std::uint64_t task, int repeat) noexcept;

// What a record's tail says: the error, or the MessagePack result; which
// process ran the task, for how long, and (across MPI ranks) on which machine.
struct RecordTail {
  const TaskError* error = nullptr;  // none: ok
  std::string_view result;           // MessagePack, when ok
  int worker = 0;
  double seconds = 0;
  const std::string* node = nullptr;
  const Value* result_value = nullptr;  // when set, the result itself, written without MessagePack
};
// "status":...,"result" or "error":...,"worker":...,"seconds":...}
void append_record_tail(std::string& out, const RecordTail& tail, const RecordFields& fields = {});

// A record's status words, in the order counts keep them (run_report.hpp).
inline constexpr std::size_t kStatuses = 5;
inline constexpr std::array<std::string_view, kStatuses> kStatusWords = {"ok", "error", "timeout", "crashed",
                                                                         "memory"};
// The index in kStatusWords of an error kind's status (0, "ok", for none).
std::size_t status_index(const TaskError* error) noexcept;
// The record's status for an error kind ("ok" for none).
inline const char* record_status(const TaskError* error) noexcept { return kStatusWords[status_index(error)].data(); }

}  // namespace mathpool::detail
