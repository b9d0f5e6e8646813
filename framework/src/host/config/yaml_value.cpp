#include "yaml_value.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

#include "scan.hpp"

namespace mathpool::detail {

std::string quote_short(std::string_view text) {
  constexpr std::size_t kShown = 40;
  if (text.size() <= kShown) return "'" + std::string(text) + "'";
  return "'" + std::string(text.substr(0, kShown)) + "...' (" + std::to_string(text.size()) +
         " characters)";
}

namespace {

bool one_of(std::string_view s, std::initializer_list<std::string_view> words) {
  for (std::string_view w : words)
    if (s == w) return true;
  return false;
}

// An integer that matched is_integer or is_hex, as int64 or (positive only) uint64.
Value integer(std::string_view s) {
  const bool hex = scan::is_hex(s);
  const char* begin = s.data() + (hex ? 2 : (s[0] == '+' ? 1 : 0));
  const char* end = s.data() + s.size();
  std::int64_t v = 0;
  auto r = std::from_chars(begin, end, v, hex ? 16 : 10);
  if (r.ec == std::errc() && r.ptr == end) return v;
  std::uint64_t u = 0;
  r = std::from_chars(begin, end, u, hex ? 16 : 10);
  if (s[0] != '-' && r.ec == std::errc() && r.ptr == end) return u;
  throw std::invalid_argument("integer " + quote_short(s) + " does not fit in 64 bits");
}

// A float that matched is_float; out of a double's range is an error rather
// than a silent infinity or zero.
double floating(std::string_view s) {
  const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
  const char* end = s.data() + s.size();
  double v = 0;
  const auto r = std::from_chars(begin, end, v);
  if (r.ec == std::errc() && r.ptr == end) return v;
  throw std::invalid_argument("number " + quote_short(s) + " is out of range for a 64-bit float");
}

}  // namespace

Value plain_scalar(std::string_view s) {
  if (one_of(s, {"~", "null", "Null", "NULL", ""})) return nullptr;
  if (one_of(s, {"true", "True", "TRUE"})) return true;
  if (one_of(s, {"false", "False", "FALSE"})) return false;
  if (scan::is_integer(s) || scan::is_hex(s)) return integer(s);
  if (scan::is_float(s)) return floating(s);
  if (one_of(s, {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"})) return INFINITY;
  if (one_of(s, {"-.inf", "-.Inf", "-.INF"})) return -INFINITY;
  if (one_of(s, {".nan", ".NaN", ".NAN"})) return NAN;
  return std::string(s);
}

namespace {

// Where a node sits below the converted one; a chain on the stack, turned
// into text only when an error needs it.
struct PathStep {
  const PathStep* parent = nullptr;
  std::string_view key;  // for a map member
  std::size_t index = 0;  // for a list item, when key is empty
  bool is_index = false;
};

std::string path_text(const PathStep* step) {
  if (!step) return "";
  std::string here = step->is_index ? "[" + std::to_string(step->index) + "]"
                                    : "." + std::string(step->key);
  return path_text(step->parent) + here;
}

class Converter {
 public:
  explicit Converter(YamlBudget& budget) : budget_(budget) {}

  // Spends the budget on `node` and all below it, without building anything:
  // an alias bomb is refused after a cheap walk, before any Value is made.
  void measure(const YAML::Node& node, const PathStep* at, int depth) {
    spend(node, at, depth);
    if (node.IsSequence()) {
      std::size_t i = 0;
      for (const auto& item : node) {
        const PathStep step{at, {}, i++, true};
        measure(item, &step, depth + 1);
      }
    } else if (node.IsMap()) {
      for (const auto& item : node) {
        const std::string_view key =
            item.first.IsScalar() ? std::string_view(item.first.Scalar()) : std::string_view("?");
        const PathStep step{at, key, 0, false};
        measure(item.second, &step, depth + 1);
      }
    }
  }

  // Converts a node that measure() accepted.
  Value convert(const YAML::Node& node, const PathStep* at, int depth) {
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        return nullptr;
      case YAML::NodeType::Scalar:
        return scalar(node, at);
      case YAML::NodeType::Sequence:
        return sequence(node, at, depth);
      case YAML::NodeType::Map:
        return map(node, at, depth);
    }
    return nullptr;
  }

 private:
  // Counts one node against the budget and the depth limit.
  void spend(const YAML::Node& node, const PathStep* at, int depth) {
    if (depth > YamlBudget::kMaxDepth)
      throw YamlValueError("nested deeper than " + std::to_string(YamlBudget::kMaxDepth) + " levels",
                           node.Mark(), path_text(at));
    if (budget_.nodes_left == 0)
      throw YamlValueError("the config expands to more than " +
                               std::to_string(YamlBudget::kDefaultNodes) +
                               " values (counting each use of an alias)",
                           node.Mark(), path_text(at));
    --budget_.nodes_left;
  }

  static Value scalar(const YAML::Node& node, const PathStep* at) {
    if (node.Tag() == "!") return node.Scalar();
    try {
      return plain_scalar(node.Scalar());
    } catch (const std::invalid_argument& e) {
      throw YamlValueError(e.what(), node.Mark(), path_text(at));
    }
  }

  Value sequence(const YAML::Node& node, const PathStep* at, int depth) {
    Value list = Value::array();
    std::size_t i = 0;
    for (const auto& item : node) {
      const PathStep step{at, {}, i++, true};
      list.push_back(convert(item, &step, depth + 1));
    }
    return list;
  }

  Value map(const YAML::Node& node, const PathStep* at, int depth) {
    Value map = Value::object();
    for (const auto& item : node) {
      if (!item.first.IsScalar())
        throw YamlValueError("map keys must be plain values", item.first.Mark(), path_text(at));
      const std::string& key = item.first.Scalar();
      const PathStep step{at, key, 0, false};
      if (map.contains(key)) throw YamlValueError("duplicate key", item.first.Mark(), path_text(&step));
      map[key] = convert(item.second, &step, depth + 1);
    }
    return map;
  }

  YamlBudget& budget_;
};

}  // namespace

Value yaml_to_value(const YAML::Node& node, YamlBudget& budget) {
  Converter converter(budget);
  converter.measure(node, nullptr, 0);
  return converter.convert(node, nullptr, 0);
}

Value yaml_to_value(const YAML::Node& node) {
  YamlBudget budget;
  return yaml_to_value(node, budget);
}


}  // namespace mathpool::detail
