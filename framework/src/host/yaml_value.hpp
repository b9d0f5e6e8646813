// yaml_value.hpp: YAML nodes to Values with YAML 1.2 core-schema typing.
#pragma once

#include <yaml-cpp/yaml.h>

#include "mathpool/value.hpp"

namespace mathpool::detail {

// Converts a node: quoted scalars stay strings; plain scalars become null,
// bool, integer or float when they read as one. Throws std::invalid_argument
// for an integer too large for 64 bits.
Value yaml_to_value(const YAML::Node& node);

}  // namespace mathpool::detail
