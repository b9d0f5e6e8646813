// The values a `sweep` key or `rows` file can take, read from the config.
#include <fmt/format.h>

#include "config_reader.hpp"
#include "csv.hpp"

namespace mathpool::detail {
namespace {

// An integer of a range: START, STOP or STEP.
std::int64_t range_integer(const Reader& r, const YAML::Node& node, const std::string& key) {
  const Value v = r.value(node, key);
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(INT64_MAX)))
    r.fail(node, key, fmt::format("'{}' is not a 64-bit integer", node.IsScalar() ? node.Scalar() : v.dump()));
  return v.get<std::int64_t>();
}

// {range: [START, STOP]} or {range: [START, STOP, STEP]}, as Python's range.
IntegerRange read_range(const Reader& r, const YAML::Node& node, const std::string& key) {
  const YAML::Node bounds = node["range"];
  if (!bounds.IsSequence() || bounds.size() < 2 || bounds.size() > 3)
    r.fail(bounds, key + ".range", "expected [START, STOP] or [START, STOP, STEP]");
  const std::int64_t start = range_integer(r, bounds[0], key + ".range[0]");
  const std::int64_t stop = range_integer(r, bounds[1], key + ".range[1]");
  const std::int64_t step = bounds.size() == 3 ? range_integer(r, bounds[2], key + ".range[2]") : 1;
  if (step == 0) r.fail(bounds[2], key + ".range[2]", "the step must not be 0");
  const IntegerRange range = make_range(start, stop, step);
  if (range.count == 0)
    r.fail(bounds, key + ".range", fmt::format("range [{}, {}, {}] is empty; a sweep needs at least one value",
                                               start, stop, step));
  return range;
}

std::vector<Value> read_list(const Reader& r, const YAML::Node& node, const std::string& key) {
  Value list = r.value(node, key);
  if (list.empty()) r.fail(node, key, "a sweep needs at least one value");
  return {list.begin(), list.end()};
}

SweepAxis read_product(const Reader& r, const YAML::Node& node, const std::string& name, const std::string& key,
                       bool label) {
  const YAML::Node positions = node["product"];
  if (!positions.IsSequence() || positions.size() == 0)
    r.fail(positions, key + ".product", "expected a non-empty list of lists or {range: ...}");
  std::vector<ProductFactor> factors;
  for (std::size_t i = 0; i < positions.size(); ++i) {
    const std::string at = fmt::format("{}.product[{}]", key, i);
    ProductFactor factor;
    if (positions[i].IsSequence()) {
      for (const Value& v : read_list(r, positions[i], at)) factor.list.add(v);
    } else if (positions[i].IsMap()) {
      r.expect_map(positions[i], at, {"range"});
      if (!positions[i]["range"]) r.fail(positions[i], at, "expected a list or {range: ...}");
      factor.range = read_range(r, positions[i], at);
    } else {
      r.fail(positions[i], at, "expected a list or {range: ...}");
    }
    factors.push_back(std::move(factor));
  }
  return product_axis(name, std::move(factors), label);
}

// The CSV file a `csv:` key names.
fs::path csv_path(const Reader& r, const YAML::Node& file, const std::string& key) {
  if (!file) r.fail(file, key, "expected a file name");
  return r.relative(r.scalar(file, key));
}

// {words: {alphabet: A, length: N, prefix: P, suffix: S}}
SweepAxis read_words(const Reader& r, const YAML::Node& node, const std::string& name, const std::string& key,
                     bool label, const std::vector<SweepAxis>& earlier) {
  const YAML::Node spec = node["words"];
  const std::string at = key + ".words";
  r.expect_map(spec, at, {"alphabet", "length", "prefix", "suffix"});
  Words words;
  const YAML::Node alphabet = spec["alphabet"];
  if (!alphabet) r.fail(spec, at + ".alphabet", "is required (a list or {range: ...})");
  if (alphabet.IsSequence()) {
    for (const Value& v : read_list(r, alphabet, at + ".alphabet")) words.alphabet.list.add(v);
  } else if (alphabet.IsMap()) {
    r.expect_map(alphabet, at + ".alphabet", {"range"});
    words.alphabet.range = read_range(r, alphabet, at + ".alphabet");
  } else {
    r.fail(alphabet, at + ".alphabet", "expected a list or {range: ...}");
  }
  for (const char* end : {"prefix", "suffix"}) {
    if (const YAML::Node n = spec[end]) {
      if (!n.IsSequence()) r.fail(n, at + "." + end, "expected a list (possibly empty)");
      const Value list = r.value(n, at + "." + end);
      (std::string(end) == "prefix" ? words.prefix : words.suffix).assign(list.begin(), list.end());
    }
  }
  const std::uint64_t fixed = words.prefix.size() + words.suffix.size();
  const YAML::Node length = spec["length"];
  if (!length) r.fail(spec, at + ".length", "is required (an integer, or the name of an earlier sweep key)");
  constexpr std::uint64_t kMaxLength = 65536;
  constexpr std::uint64_t kMaxLengthValues = 1000;
  const std::string text = r.scalar(length, at + ".length");
  auto check_length = [&](const Value& v, const std::string& what) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::uint64_t>() > kMaxLength)
      r.fail(length, at + ".length", fmt::format("{} is not a length (an integer from 0 to {})", what, kMaxLength));
    if (v.get<std::uint64_t>() < fixed)
      r.fail(length, at + ".length", fmt::format("{} is shorter than the prefix and suffix together ({})", what, fixed));
    return v.get<std::uint64_t>();
  };
  if (scan::is_integer(text)) {
    words.lengths.push_back(check_length(r.value(length, at + ".length"), fmt::format("length {}", text)));
  } else {
    std::size_t a = 0;
    while (a < earlier.size() && (earlier[a].from_rows() || earlier[a].keys().at(0) != text)) ++a;
    if (a == earlier.size())
      r.fail(length, at + ".length",
             fmt::format("'{}' is neither an integer nor an earlier key of this sweep", text));
    if (earlier[a].length_axis() || earlier[a].size() > kMaxLengthValues)
      r.fail(length, at + ".length",
             fmt::format("sweep key '{}' cannot give lengths (it must be a list or range of at most {} integers)",
                         text, kMaxLengthValues));
    // Tasks are found by summing over the length keys' values: their
    // combinations are kept few.
    std::uint64_t combinations = earlier[a].size();
    for (std::size_t j = 0; j < earlier.size(); ++j) {
      const bool used = std::any_of(earlier.begin(), earlier.end(), [&](const SweepAxis& w) { return w.length_axis() == j; });
      if (used && j != a) combinations *= earlier[j].size();
    }
    if (combinations > kMaxLengthValues)
      r.fail(length, at + ".length",
             fmt::format("the sweep keys that give lengths have {} combinations; at most {} are allowed", combinations,
                         kMaxLengthValues));
    for (std::uint64_t i = 0; i < earlier[a].size(); ++i) {
      const Value v = earlier[a].value(i);
      words.lengths.push_back(check_length(v, fmt::format("{} = {}", text, v.dump())));
    }
    words.length_axis = a;
  }
  return words_axis(name, std::move(words), label);
}

}  // namespace

SweepAxis read_sweep_axis(const Reader& r, const YAML::Node& node, const std::string& name, const std::string& key,
                          bool label, const std::vector<SweepAxis>& earlier) {
  if (node.IsSequence()) return list_axis(name, read_list(r, node, key), label);
  if (!node.IsMap())
    r.fail(node, key, "a sweep takes a list, {range: ...}, {csv: FILE}, {product: ...} or {words: ...}");
  r.expect_map(node, key, {"csv", "column", "range", "product", "words"});
  if (node["range"] && node.size() == 1) return range_axis(name, read_range(r, node, key), label);
  if (node["product"] && node.size() == 1) return read_product(r, node, name, key, label);
  if (node["words"] && node.size() == 1) return read_words(r, node, name, key, label, earlier);
  if (!node["csv"] || node["range"] || node["product"] || node["words"])
    r.fail(node, key,
           "expected one of {range: ...}, {csv: FILE}, {csv: FILE, column: NAME}, {product: ...}, {words: ...}");
  const fs::path csv = csv_path(r, node["csv"], key + ".csv");
  EncodedValues values;
  try {
    if (const YAML::Node column = node["column"]) {
      const std::string wanted = r.scalar(column, key + ".column");
      HeaderCsv table(csv);
      const auto& header = table.header();
      const auto at = std::find(header.begin(), header.end(), wanted);
      if (at == header.end()) r.fail(column, key + ".column", fmt::format("no column '{}' in the CSV header", wanted));
      std::vector<Value> row;
      while (table.next(row)) values.add(row[std::size_t(at - header.begin())]);
    } else {
      read_integer_csv(csv, values);
    }
  } catch (const ConfigError&) {
    throw;
  } catch (const std::runtime_error& e) {
    r.fail(node["csv"], key + ".csv", e.what());
  }
  if (values.size() == 0) r.fail(node["csv"], key + ".csv", fmt::format("{} has no data rows", csv.string()));
  return list_axis(name, std::move(values), label);
}

SweepAxis read_rows(const Reader& r, const YAML::Node& rows, const std::string& key,
                    const std::set<std::string>& labels) {
  r.expect_map(rows, key, {"csv"});
  if (!rows["csv"]) r.fail(rows, key, "expected {csv: FILE}");
  const fs::path csv = csv_path(r, rows["csv"], key + ".csv");
  std::vector<std::string> header;
  EncodedValues values;
  try {
    HeaderCsv table(csv);
    header = table.header();
    values.reserve(table.size());  // rows encode no longer than their text, mostly
    std::vector<Value> row;
    Bytes encoded;
    while (table.next(row)) {
      encoded.clear();
      append_msgpack(encoded, Value(row));
      values.add_encoded(encoded);
    }
  } catch (const std::runtime_error& e) {
    r.fail(rows["csv"], key + ".csv", e.what());
  }
  if (values.size() == 0) r.fail(rows["csv"], key + ".csv", fmt::format("{} has no data rows", csv.string()));
  std::vector<bool> flags;
  for (const std::string& column : header) flags.push_back(labels.count(column) > 0);
  return rows_axis(std::move(header), std::move(flags), std::move(values));
}

}  // namespace mathpool::detail
