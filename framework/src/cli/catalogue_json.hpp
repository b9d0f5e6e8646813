// catalogue_json.hpp: `mathpool plugins --json` and `describe NAME --json`:
// the catalogue as JSON for programs, in a shape that stays put.
#pragma once

#include <string>

#include "mathpool/value.hpp"

namespace mathpool::cli {

// One analysis: name, version, description, plugin, open_params, params
// [{name, type, default (null when required), required, meaning}], results
// [{name, type, meaning}].
Value analysis_json(const Value& catalogue_entry);
// Every analysis as [{name, version, plugin, description}].
Value plugins_json(const Value& catalogue);

}  // namespace mathpool::cli
