// record.hpp: result records the host writes itself (tasks no worker
// answered, tasks routed to other machines, run_plan's), with the writer the
// workers use (record_line.hpp); reading record files back.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "completion.hpp"
#include "record_fields.hpp"
#include "record_line.hpp"

namespace mathpool::detail {

// The tail of a record the host writes itself, from a RawResult.
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
