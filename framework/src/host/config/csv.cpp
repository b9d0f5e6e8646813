#include "csv.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "yaml_value.hpp"

namespace mathpool::detail {
namespace {

constexpr std::size_t kReadBuffer = 1 << 16;

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

// Opens `file` with a large buffer and skips a UTF-8 byte-order mark.
void open_csv(std::ifstream& in, std::unique_ptr<char[]>& buffer, const std::filesystem::path& file) {
  buffer = std::make_unique<char[]>(kReadBuffer);
  in.rdbuf()->pubsetbuf(buffer.get(), kReadBuffer);
  in.open(file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read CSV file {}", file.string()));
  char bom[3] = {};
  in.read(bom, 3);
  if (!(in.gcount() == 3 && bom[0] == '\xEF' && bom[1] == '\xBB' && bom[2] == '\xBF')) {
    in.clear();
    in.seekg(0);
  }
}

// "[1, 0, -3]" without a YAML parser: the common case of a list cell, fast.
bool integer_list(std::string_view s, Value& out) {
  if (s.size() < 2 || s.front() != '[' || s.back() != ']') return false;
  s = trim(s.substr(1, s.size() - 2));
  out = Value::array();
  while (!s.empty()) {
    const auto comma = s.find(',');
    const std::string_view item = trim(s.substr(0, comma));
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size()) return false;
    out.push_back(v);
    if (comma == std::string_view::npos) break;
    s = s.substr(comma + 1);
    if (trim(s).empty()) return false;  // "[1,]": let YAML say what it is
  }
  return true;
}

}  // namespace

Value cell_value(std::string_view cell) {
  cell = trim(cell);
  if (cell.empty() || (cell.front() != '[' && cell.front() != '{')) return plain_scalar(cell);
  Value v;
  if (integer_list(cell, v)) return v;
  // Refuse deep nesting before yaml-cpp recurses into it (over-counting
  // brackets inside quoted text only refuses sooner).
  int depth = 0, deepest = 0;
  for (char c : cell) {
    if (c == '[' || c == '{') deepest = std::max(deepest, ++depth);
    if (c == ']' || c == '}') --depth;
  }
  if (deepest > YamlBudget::kMaxDepth)
    throw std::invalid_argument(fmt::format("{} nests deeper than {} levels", quote_short(cell), YamlBudget::kMaxDepth));
  try {
    return yaml_to_value(YAML::Load(std::string(cell)));
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(fmt::format("{} is not a YAML flow value: {}", quote_short(cell), e.msg));
  }
}

std::uint64_t read_integer_csv(const std::filesystem::path& file, EncodedValues& out) {
  std::ifstream in;
  std::unique_ptr<char[]> buffer;
  open_csv(in, buffer, file);
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(file, ec);
  if (!ec) out.reserve(bytes);  // a row's encoding is no longer than its text
  std::uint64_t rows = 0;
  std::string line;
  Bytes row, encoded;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string_view data = line;
    if (auto hash = data.find('#'); hash != std::string_view::npos) data = data.substr(0, hash);
    data = trim(data);
    if (data.empty()) continue;
    row.clear();
    std::uint32_t count = 0;
    while (true) {
      const auto comma = data.find(',');
      const std::string_view cell = trim(data.substr(0, comma));
      std::int64_t v = 0;
      auto [ptr, err] = std::from_chars(cell.data(), cell.data() + cell.size(), v);
      if (cell.empty() || err != std::errc() || ptr != cell.data() + cell.size())
        throw std::runtime_error(fmt::format("{}:{}: {} is not an integer", file.string(), number, quote_short(cell)));
      append_msgpack_int(row, v);
      ++count;
      if (comma == std::string_view::npos) break;
      data = data.substr(comma + 1);
    }
    encoded.clear();
    append_msgpack_array_header(encoded, count);
    encoded += row;
    out.add_encoded(encoded);
    ++rows;
  }
  return rows;
}

CsvReader::CsvReader(const std::filesystem::path& file) : file_(file) {
  open_csv(in_, buffer_, file);
  std::error_code ec;
  size_ = std::filesystem::file_size(file, ec);
  if (ec) size_ = 0;
}

int CsvReader::get() {
  const int c = in_.rdbuf()->sbumpc();
  if (c == '\n') ++line_;
  return c == std::char_traits<char>::eof() ? -1 : c;
}

int CsvReader::peek() {
  const int c = in_.rdbuf()->sgetc();
  return c == std::char_traits<char>::eof() ? -1 : c;
}

void CsvReader::fail(int line, const std::string& why) const {
  throw std::runtime_error(fmt::format("{}:{}: {}", file_.string(), line, why));
}

bool CsvReader::next(std::vector<std::string>& cells) {
  for (;;) {
    cells.clear();
    record_line_ = line_;
    int c = peek();
    if (c < 0) return false;
    if (c == '#') {  // a comment line
      while ((c = get()) >= 0 && c != '\n') {}
      continue;
    }
    bool only_blank = true;
    for (;;) {  // one cell per turn
      std::string cell;
      while ((c = peek()) == ' ' || c == '\t') get();
      if (c == '"') {
        only_blank = false;
        const int opened = line_;
        get();
        for (;;) {
          c = get();
          if (c < 0) fail(opened, "a quoted cell is not closed (a \" is missing)");
          if (c == '"') {
            if (peek() != '"') break;
            get();  // "" is one quote
          }
          cell += char(c);
        }
        while ((c = peek()) == ' ' || c == '\t' || c == '\r') get();
        if (c >= 0 && c != ',' && c != '\n')
          fail(line_, fmt::format("text after the closing quote of a cell ({}); quote the whole cell",
                                  quote_short(std::string(1, char(c)))));
      } else {
        while ((c = peek()) >= 0 && c != ',' && c != '\n') cell += char(get());
        cell = std::string(trim(cell));
        if (!cell.empty()) only_blank = false;
      }
      cells.push_back(std::move(cell));
      c = get();
      if (c == ',') {
        only_blank = false;
        continue;
      }
      break;  // a newline or the end
    }
    if (only_blank) continue;  // a blank line
    return true;
  }
}

HeaderCsv::HeaderCsv(const std::filesystem::path& file) : reader_(file) {
  if (!reader_.next(cells_)) throw std::runtime_error(fmt::format("{} has no header row", file.string()));
  for (const std::string& name : cells_) {
    if (name.empty())
      throw std::runtime_error(fmt::format("{}:{}: an empty column name", file.string(), reader_.line()));
    if (std::find(header_.begin(), header_.end(), name) != header_.end())
      throw std::runtime_error(fmt::format("{}:{}: column '{}' appears twice", file.string(), reader_.line(), name));
    header_.push_back(name);
  }
}

bool HeaderCsv::next(std::vector<Value>& row) {
  if (!reader_.next(cells_)) return false;
  const auto where = [&] { return fmt::format("{}:{}", reader_.file().string(), reader_.line()); };
  if (cells_.size() != header_.size())
    throw std::runtime_error(fmt::format("{}: {} cells, but the header names {} columns", where(), cells_.size(),
                                         header_.size()));
  row.clear();
  for (std::size_t i = 0; i < cells_.size(); ++i) {
    try {
      row.push_back(cell_value(cells_[i]));
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(fmt::format("{}: column '{}': {}", where(), header_[i], e.what()));
    }
  }
  return true;
}

}  // namespace mathpool::detail
