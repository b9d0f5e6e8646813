// csv.hpp: the CSV format of lfsr-seq: one comma-separated list of integers per
// row; `#` starts a comment; blank lines are skipped.
#pragma once

#include <filesystem>
#include <vector>

#include "mathpool/value.hpp"

namespace mathpool::detail {

// One list Value per data row. Throws std::runtime_error naming file and line.
std::vector<Value> read_integer_csv(const std::filesystem::path& file);

// A CSV whose first data row names the columns; each cell typed as a YAML
// plain scalar (integer, float, bool, null or string). Cells are split at
// commas and trimmed; there is no quoting. Lines starting with `#` and blank
// lines are skipped. Throws std::runtime_error naming file and line.
struct HeaderCsv {
  std::vector<std::string> header;
  std::vector<std::vector<Value>> rows;
};
HeaderCsv read_header_csv(const std::filesystem::path& file);

}  // namespace mathpool::detail
