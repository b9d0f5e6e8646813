// record_fields.hpp: which fields a result record carries (`output_fields:`).
// Header-only: the config loader checks names without the record writer.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace mathpool::detail {

// The fields a record carries; run, task, repeat and status always stay, so
// a resumed run knows what is done.
struct RecordFields {
  bool analysis = true, params = true, labels = true, result = true, error = true, worker = true, seconds = true,
       node = true;
};

// Every field name, in record order.
inline const std::vector<std::string>& record_field_names() {
  static const std::vector<std::string> names = {"run",    "analysis", "task",   "repeat",  "params", "labels",
                                                 "status", "result",   "error",  "worker",  "seconds", "node"};
  return names;
}

// The fields of a list of names (empty: only those always written). Throws
// std::invalid_argument naming an unknown field.
inline RecordFields record_fields(const std::vector<std::string>& names) {
  RecordFields f{false, false, false, false, false, false, false, false};
  for (const std::string& name : names) {
    if (name == "analysis") f.analysis = true;
    else if (name == "params") f.params = true;
    else if (name == "labels") f.labels = true;
    else if (name == "result") f.result = true;
    else if (name == "error") f.error = true;
    else if (name == "worker") f.worker = true;
    else if (name == "seconds") f.seconds = true;
    else if (name == "node") f.node = true;
    else if (name != "run" && name != "task" && name != "repeat" && name != "status") {
      std::string known;
      for (const std::string& n : record_field_names()) known += (known.empty() ? "" : ", ") + n;
      throw std::invalid_argument("unknown record field '" + name + "' (fields: " + known + ")");
    }
  }
  return f;
}

}  // namespace mathpool::detail
