// record.hpp: result records written straight from bytes: the head from the
// task's encoded parameters, the tail from the worker's encoded result.
// Byte for byte what format_record(make_record(...)) writes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "completion.hpp"

namespace mathpool::detail {

// `{"run":RUN,"analysis":ANALYSIS,"task":` : the same for every task of an entry.
std::string record_prefix(std::string_view run, std::string_view analysis);
// prefix . TASK ,"repeat": REPEAT ,"params": PARAMS , and "labels": LABELS ,
// when `labels` (a MessagePack map) is not empty.
void append_record_head(std::string& out, std::string_view prefix, std::uint64_t task, int repeat,
                        std::string_view params, std::string_view labels = {});
// "status":...,"result" or "error":...,"worker":...,"seconds":...}
void append_record_tail(std::string& out, const RawResult& result);

// Calls `record(line, number)` for each complete line of a JSON Lines file
// (1-based numbers). A partial last line (a killed writer) is cut off the file
// afterwards, so appending continues cleanly; throws std::runtime_error when
// that fails. A missing file has no lines.
void for_each_record_line(const std::filesystem::path& file,
                          const std::function<void(const std::string& line, int number)>& record);

}  // namespace mathpool::detail
