// record.hpp: result records written straight from bytes: the head from the
// task's encoded parameters, the tail from the worker's encoded result.
// Byte for byte what format_record(make_record(...)) writes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "completion.hpp"
#include "record_fields.hpp"

namespace mathpool::detail {

// `{"run":RUN,"analysis":ANALYSIS,"task":` : the same for every task of an entry.
std::string record_prefix(std::string_view run, std::string_view analysis, const RecordFields& fields = {});
// prefix . TASK ,"repeat": REPEAT ,"params": PARAMS (when the fields keep it),
// and "labels": LABELS , when `labels` (a MessagePack map) is not empty.
void append_record_head(std::string& out, std::string_view prefix, std::uint64_t task, int repeat,
                        std::string_view params, const RecordFields& fields = {}, std::string_view labels = {});
// "status":...,"result" or "error":...,"worker":...,"seconds":...}
void append_record_tail(std::string& out, const RawResult& result, const RecordFields& fields = {});

// Calls `record(line, number)` for each complete line of a JSON Lines file
// (1-based numbers), zstd-compressed when its name ends in ".zst". A partial
// last line (a killed writer) or zstd frame is cut off the file, so appending
// continues cleanly; throws std::runtime_error when that fails. A missing
// file has no lines.
void for_each_record_line(const std::filesystem::path& file,
                          const std::function<void(const std::string& line, int number)>& record);
// The bytes of records `file` holds (decompressed; complete frames only,
// cutting off a partial last frame): a bound on the records it can hold.
std::uint64_t record_bytes(const std::filesystem::path& file);

}  // namespace mathpool::detail
