// catalogue_json.hpp: `mathpool plugins --json` and `describe NAME --json`:
// the catalogue as JSON for programs, in a shape that stays put. In the host
// library so the Python module gives the same dicts (plugins(), describe()).
#pragma once

#include <string>

#include "mathpool/value.hpp"

namespace mathpool::detail {

// One analysis: name, version, description, plugin, open_params, params
// [{name, type, default (null when required), required, meaning}], results
// [{name, type, meaning}].
Value analysis_json(const Value& catalogue_entry);
// Every analysis as [{name, version, plugin, description}].
Value plugins_json(const Value& catalogue);

}  // namespace mathpool::detail
