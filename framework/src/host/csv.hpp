// csv.hpp: the CSV format of lfsr-seq: one comma-separated list of integers per
// row; `#` starts a comment; blank lines are skipped.
#pragma once

#include <filesystem>
#include <vector>

#include "mathpool/value.hpp"

namespace mathpool::detail {

// One list Value per data row. Throws std::runtime_error naming file and line.
std::vector<Value> read_integer_csv(const std::filesystem::path& file);

}  // namespace mathpool::detail
