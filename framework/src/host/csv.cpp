#include "csv.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

#include "yaml_value.hpp"

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

HeaderCsv read_header_csv(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(fmt::format("cannot read CSV file {}", file.string()));
  HeaderCsv csv;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string_view data = trim(line);
    if (data.empty() || data.front() == '#') continue;
    std::vector<std::string> cells;
    for (std::string_view rest = data;;) {
      const auto comma = rest.find(',');
      cells.emplace_back(trim(rest.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
    if (csv.header.empty()) {
      for (const std::string& name : cells) {
        if (name.empty()) throw std::runtime_error(fmt::format("{}:{}: an empty column name", file.string(), number));
        if (std::find(csv.header.begin(), csv.header.end(), name) != csv.header.end())
          throw std::runtime_error(fmt::format("{}:{}: column '{}' appears twice", file.string(), number, name));
        csv.header.push_back(name);
      }
      continue;
    }
    if (cells.size() != csv.header.size())
      throw std::runtime_error(fmt::format("{}:{}: {} cells, but the header names {} columns", file.string(),
                                           number, cells.size(), csv.header.size()));
    std::vector<Value> row;
    row.reserve(cells.size());
    for (const std::string& cell : cells) {
      try {
        row.push_back(plain_scalar(cell));
      } catch (const std::invalid_argument& e) {
        throw std::runtime_error(fmt::format("{}:{}: {}", file.string(), number, e.what()));
      }
    }
    csv.rows.push_back(std::move(row));
  }
  if (csv.header.empty()) throw std::runtime_error(fmt::format("{} has no header row", file.string()));
  return csv;
}

}  // namespace mathpool::detail
