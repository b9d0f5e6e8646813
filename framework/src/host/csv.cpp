#include "csv.hpp"

#include <charconv>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

namespace mathpool::detail {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::vector<Value> read_integer_csv(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(fmt::format("cannot read CSV file {}", file.string()));
  std::vector<Value> rows;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string_view data = line;
    if (auto hash = data.find('#'); hash != std::string_view::npos) data = data.substr(0, hash);
    data = trim(data);
    if (data.empty()) continue;
    Value row = Value::array();
    while (true) {
      const auto comma = data.find(',');
      const std::string_view cell = trim(data.substr(0, comma));
      std::int64_t v = 0;
      auto [ptr, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), v);
      if (cell.empty() || ec != std::errc() || ptr != cell.data() + cell.size())
        throw std::runtime_error(
            fmt::format("{}:{}: '{}' is not an integer", file.string(), number, cell));
      row.push_back(v);
      if (comma == std::string_view::npos) break;
      data = data.substr(comma + 1);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace mathpool::detail
