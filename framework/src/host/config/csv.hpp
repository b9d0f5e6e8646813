// csv.hpp: the CSV files a config names, read as a stream (never held whole):
// - lfsr-seq's format: one comma-separated list of integers per row; `#`
//   starts a comment; blank lines are skipped;
// - files with a header row, per RFC 4180: cells may be quoted ("a, b",
//   "say ""hi""", newlines inside quotes); each cell is typed as YAML would
//   type it: a plain scalar (integer, float, bool, null, string) or, when it
//   starts with [ or {, a flow value ("[1, 0, 1]", "{a: 1}"). Lines starting
//   with `#` and blank lines between rows are skipped.
// Both skip a UTF-8 byte-order mark. Errors are std::runtime_error naming
// the file and line.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mathpool/value.hpp"
#include "sweep.hpp"

namespace mathpool::detail {

// Appends each data row of an lfsr-seq CSV to `out` as a MessagePack list of
// integers; returns the number of rows.
std::uint64_t read_integer_csv(const std::filesystem::path& file, EncodedValues& out);

// The records of an RFC 4180 file, one at a time.
class CsvReader {
 public:
  explicit CsvReader(const std::filesystem::path& file);  // throws when it cannot be read
  // The cells of the next record (blank lines and `#` lines skipped); false at the end.
  bool next(std::vector<std::string>& cells);
  // The line where the last record began (1-based).
  int line() const noexcept { return record_line_; }
  const std::filesystem::path& file() const noexcept { return file_; }
  // The file's size in bytes (for reserving what its values will take).
  std::uintmax_t size() const noexcept { return size_; }

 private:
  int get();  // the next byte, or -1
  int peek();
  [[noreturn]] void fail(int line, const std::string& why) const;

  std::filesystem::path file_;
  std::ifstream in_;
  std::unique_ptr<char[]> buffer_;
  std::uintmax_t size_ = 0;
  int line_ = 1, record_line_ = 0;
};

// A CSV with a header row: the column names, then one typed row at a time.
class HeaderCsv {
 public:
  explicit HeaderCsv(const std::filesystem::path& file);  // reads the header
  const std::vector<std::string>& header() const noexcept { return header_; }
  // The next data row, one value per column; false at the end.
  bool next(std::vector<Value>& row);
  int line() const noexcept { return reader_.line(); }
  std::uintmax_t size() const noexcept { return reader_.size(); }

 private:
  CsvReader reader_;
  std::vector<std::string> header_;
  std::vector<std::string> cells_;
};

// A cell's value: a YAML flow value when it starts with [ or {, otherwise a
// plain scalar. Throws std::invalid_argument saying what is wrong.
Value cell_value(std::string_view cell);

}  // namespace mathpool::detail
