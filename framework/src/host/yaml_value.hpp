// yaml_value.hpp: YAML nodes to Values with YAML 1.2 core-schema typing.
#pragma once

#include <stdexcept>
#include <string>

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

// Converts a node: quoted scalars stay strings; plain scalars become null,
// bool, integer or float when they read as one. Throws YamlValueError for an
// integer beyond 64 bits, a map key that is not a scalar, or a repeated key.
Value yaml_to_value(const YAML::Node& node);

// A plain scalar's text typed as yaml_to_value types it (a CSV cell, say).
// Throws std::invalid_argument for an integer beyond 64 bits.
Value typed_scalar(const std::string& text);

}  // namespace mathpool::detail
