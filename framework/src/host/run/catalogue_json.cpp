#include "catalogue_json.hpp"

namespace mathpool::detail {

Value analysis_json(const Value& a) {
  Value params = Value::array();
  for (const Value& p : a.at("params")) {
    const std::string def = p.value("default", "");
    params.push_back({{"name", p.value("name", "")},
                      {"type", p.value("type", "")},
                      {"default", def.empty() ? Value() : Value(def)},
                      {"required", def.empty()},
                      {"meaning", p.value("meaning", "")}});
  }
  Value results = Value::array();
  for (const Value& f : a.at("results"))
    results.push_back({{"name", f.value("name", "")}, {"type", f.value("type", "")}, {"meaning", f.value("meaning", "")}});
  return {{"name", a.value("name", "")},
          {"version", a.value("version", "")},
          {"description", a.value("description", "")},
          {"plugin", a.value("plugin", "")},
          {"open_params", a.value("open_params", false)},
          {"params", params},
          {"results", results}};
}

Value plugins_json(const Value& catalogue) {
  Value out = Value::array();
  for (const Value& a : catalogue)
    out.push_back({{"name", a.value("name", "")},
                   {"version", a.value("version", "")},
                   {"plugin", a.value("plugin", "")},
                   {"description", a.value("description", "")}});
  return out;
}

}  // namespace mathpool::detail
