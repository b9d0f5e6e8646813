// yaml_value.hpp: YAML nodes to Values with YAML 1.2 core-schema typing.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

#include <yaml-cpp/yaml.h>

#include "mathpool/value.hpp"

namespace mathpool::detail {

// A node that has no Value: where it is and its path below the converted node
// (e.g. ".big" or "[2]").
class YamlValueError : public std::invalid_argument {
 public:
  YamlValueError(const std::string& what, YAML::Mark mark, std::string path)
      : std::invalid_argument(what), mark(mark), path(std::move(path)) {}
  YAML::Mark mark;
  std::string path;
};

// What one config may cost to convert. Aliases let a small file name a huge
// tree (an "alias bomb"), so every node visited counts, each time it is
// visited; one budget is shared by all conversions of a config.
struct YamlBudget {
#ifdef MATHPOOL_YAML_NODE_BUDGET  // smaller in the fuzz build, whose sanitizers are ~10x slower
  static constexpr std::size_t kDefaultNodes = MATHPOOL_YAML_NODE_BUDGET;
#else
  static constexpr std::size_t kDefaultNodes = 1'000'000;
#endif
  static constexpr int kMaxDepth = 64;
  std::size_t nodes_left = kDefaultNodes;
};

// Converts a node: quoted scalars stay strings; plain scalars become null,
// bool, integer or float when they read as one. Throws YamlValueError for an
// integer beyond 64 bits, a float beyond a double's range, a map key that is
// not a scalar, a repeated key, nesting deeper than YamlBudget::kMaxDepth, or
// more nodes than `budget` has left (which it spends).
Value yaml_to_value(const YAML::Node& node, YamlBudget& budget);
// The same with a fresh budget.
Value yaml_to_value(const YAML::Node& node);

// Reads a plain scalar with the core-schema rules above; throws
// std::invalid_argument for a number out of range. Exposed for tests.
Value plain_scalar(std::string_view text);

// `text` quoted for an error message, cut short when long so that one huge
// scalar does not make a huge message.
std::string quote_short(std::string_view text);

}  // namespace mathpool::detail
