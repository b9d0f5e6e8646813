#include "yaml_value.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <regex>
#include <stdexcept>

namespace mathpool::detail {
namespace {

Value plain_scalar(const std::string& s) {
  // Fast path for the common case, a plain decimal integer (sweeps of many).
  if (!s.empty() && s.size() < 19 && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-')) {
    std::int64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && ptr == s.data() + s.size() && s != "-") return v;
  }
  static const std::regex null_re("~|null|Null|NULL|");
  static const std::regex true_re("true|True|TRUE");
  static const std::regex false_re("false|False|FALSE");
  static const std::regex int_re("[-+]?[0-9]+");
  static const std::regex hex_re("0x[0-9a-fA-F]+");
  static const std::regex float_re(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  static const std::regex inf_re(R"([-+]?\.(inf|Inf|INF))");
  static const std::regex nan_re(R"(\.(nan|NaN|NAN))");
  if (std::regex_match(s, null_re)) return nullptr;
  if (std::regex_match(s, true_re)) return true;
  if (std::regex_match(s, false_re)) return false;
  if (std::regex_match(s, int_re) || std::regex_match(s, hex_re)) {
    const bool hex = s.size() > 2 && s[1] == 'x';
    const char* begin = s.data() + (hex ? 2 : (s[0] == '+' ? 1 : 0));
    const char* end = s.data() + s.size();
    std::int64_t v = 0;
    if (std::from_chars(begin, end, v, hex ? 16 : 10).ec == std::errc()) return v;
    std::uint64_t u = 0;
    if (s[0] != '-' && std::from_chars(begin, end, u, hex ? 16 : 10).ec == std::errc()) return u;
    throw std::invalid_argument("integer " + s + " does not fit in 64 bits");
  }
  if (std::regex_match(s, float_re)) return std::stod(s);
  if (std::regex_match(s, inf_re)) return s[0] == '-' ? -INFINITY : INFINITY;
  if (std::regex_match(s, nan_re)) return NAN;
  return s;
}

}  // namespace

namespace {

Value convert(const YAML::Node& node, const std::string& path) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      if (node.Tag() == "!") return node.Scalar();
      try {
        return plain_scalar(node.Scalar());
      } catch (const std::invalid_argument& e) {
        throw YamlValueError(e.what(), node.Mark(), path);
      }
    case YAML::NodeType::Sequence: {
      Value list = Value::array();
      std::size_t i = 0;
      for (const auto& item : node) list.push_back(convert(item, path + "[" + std::to_string(i++) + "]"));
      return list;
    }
    case YAML::NodeType::Map: {
      Value map = Value::object();
      for (const auto& item : node) {
        if (!item.first.IsScalar())
          throw YamlValueError("map keys must be plain values", item.first.Mark(), path);
        const std::string key = item.first.Scalar();
        if (map.contains(key))
          throw YamlValueError("duplicate key", item.first.Mark(), path + "." + key);
        map[key] = convert(item.second, path + "." + key);
      }
      return map;
    }
  }
  return nullptr;
}

}  // namespace

Value yaml_to_value(const YAML::Node& node) { return convert(node, ""); }

Value typed_scalar(const std::string& text) { return plain_scalar(text); }

}  // namespace mathpool::detail
