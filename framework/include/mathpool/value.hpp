// mathpool/value.hpp: the value tree that carries parameters and results.
#pragma once

#include <nlohmann/json.hpp>

namespace mathpool {

// A value tree: null, bool, integer, float, string, list or map. Maps keep the
// order of their keys, so records and results print the way they were built.
// Plain value semantics; not thread-safe for concurrent mutation.
using Value = nlohmann::ordered_json;

}  // namespace mathpool
