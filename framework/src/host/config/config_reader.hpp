// config_reader.hpp: reading a config's YAML with every error located:
// file, line and key (used by config.cpp and config_sweep.cpp).
#pragma once

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <set>
#include <string>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "mathpool/config.hpp"
#include "scan.hpp"
#include "sweep.hpp"
#include "yaml_value.hpp"

namespace mathpool::detail {

namespace fs = std::filesystem;

// Knows the file being read, so every error names file, line and key.
class Reader {
 public:
  explicit Reader(fs::path file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const YAML::Node& at, const std::string& key, const std::string& why) const {
    const int line = at.Mark().line >= 0 ? at.Mark().line + 1 : 0;
    throw ConfigError(fmt::format("{}:{}: key '{}': {}", file_.string(), line, key, why));
  }

  // Checks that `map` is a map with only `known` keys.
  void expect_map(const YAML::Node& map, const std::string& key,
                  std::initializer_list<std::string_view> known) const {
    expect_map(map, key, std::vector<std::string_view>(known));
  }
  void expect_map(const YAML::Node& map, const std::string& key, const std::vector<std::string_view>& known) const {
    if (!map.IsMap()) fail(map, key, "must be a map");
    std::set<std::string> seen;
    for (const auto& item : map) {
      const std::string name = key_name(item.first, key);
      if (!seen.insert(name).second) fail(item.first, path(key, name), "duplicate key");
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        std::string list;
        for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        fail(item.first, path(key, name), fmt::format("unknown key (expected one of: {})", list));
      }
    }
  }

  // A map key as text; a key that is not a plain value is an error.
  std::string key_name(const YAML::Node& key_node, const std::string& parent) const {
    if (!key_node.IsScalar()) fail(key_node, parent, "map keys must be plain values");
    return key_node.Scalar();
  }

  std::string scalar(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) fail(node, key, "must be a single value");
    return node.Scalar();
  }

  // A decimal integer in [min, INT32_MAX]; anything else names the key.
  int integer(const YAML::Node& node, const std::string& key, int min) const {
    const std::string text = scalar(node, key);
    if (!detail::scan::is_integer(text))
      fail(node, key, fmt::format("{} is not an integer", detail::quote_short(text)));
    const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
    std::int64_t v = 0;
    if (std::from_chars(begin, text.data() + text.size(), v).ec != std::errc())
      fail(node, key, fmt::format("{} is out of range", detail::quote_short(text)));
    if (v < min) fail(node, key, fmt::format("must be at least {}, got {}", min, v));
    if (v > INT32_MAX) fail(node, key, fmt::format("must be at most {}, got {}", INT32_MAX, v));
    return static_cast<int>(v);
  }

  // The node as a Value, spending this config's node budget (see YamlBudget).
  Value value(const YAML::Node& node, const std::string& key) const {
    try {
      return detail::yaml_to_value(node, budget_);
    } catch (const detail::YamlValueError& e) {
      const int line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
      throw ConfigError(fmt::format("{}:{}: key '{}{}': {}", file_.string(), line, key, e.path, e.what()));
    }
  }

  fs::path relative(const std::string& path) const {
    fs::path p(path);
    return p.is_absolute() ? p : file_.parent_path() / p;
  }

  // A plugin_path entry, resolved against the config's folder. A config read
  // from a file has its entries checked here, where the line is known, rather
  // than later by a worker that can only name the path.
  fs::path plugin_path(const YAML::Node& node, const std::string& key) const {
    const fs::path p = relative(scalar(node, key));
    std::error_code ec;
    if (fs::is_regular_file(file_, ec) && !fs::exists(p, ec))
      fail(node, key, fmt::format("no such file or directory: {}", p.string()));
    return p;
  }

  static std::string path(const std::string& parent, const std::string& key) {
    return parent.empty() ? key : parent + "." + key;
  }

 private:
  fs::path file_;
  mutable detail::YamlBudget budget_;  // one for the whole config
};

// One `sweep` key: a list, {range}, {csv}, {csv, column}, {product} or
// {words}. `earlier`: the entry's axes so far (a words length may name one).
SweepAxis read_sweep_axis(const Reader& r, const YAML::Node& node, const std::string& name, const std::string& key,
                          bool label, const std::vector<SweepAxis>& earlier);
// `rows: {csv: FILE}`; `labels`: the entry's label names.
SweepAxis read_rows(const Reader& r, const YAML::Node& rows, const std::string& key,
                    const std::set<std::string>& labels);

}  // namespace mathpool::detail
