// mathpool/analysis.hpp: how a plugin declares an analysis.
//
//   registry.add({
//       .name = "example.echo", .version = "1.0.0",
//       .description = "Returns its parameters unchanged",
//       .open_params = true,
//       .run = [](const mathpool::TaskContext& task) { return task.params().raw(); }});
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "mathpool/error.hpp"
#include "mathpool/value.hpp"

namespace mathpool {

// Documentation of one parameter, shown by `mathpool describe`.
struct ParamDoc {
  std::string name;
  std::string type;           // e.g. "integer", "list of integers", "bool"
  std::string default_value;  // empty: the parameter is required
  std::string meaning;
};

// Documentation of one result field, shown by `mathpool describe`.
struct FieldDoc {
  std::string name;
  std::string type;
  std::string meaning;
};

// Read-only view of one task's parameters. Each accessor checks the type and
// throws InvalidParams naming the parameter. Cheap to copy; borrows the Value.
class Params {
 public:
  explicit Params(const Value& params) : params_(&params) {}

  const Value& raw() const noexcept { return *params_; }
  bool has(std::string_view name) const;
  const Value& at(std::string_view name) const;  // required parameter

  std::int64_t integer(std::string_view name) const;
  std::int64_t integer(std::string_view name, std::int64_t fallback) const;
  bool boolean(std::string_view name, bool fallback) const;
  std::string string(std::string_view name, const std::string& fallback) const;
  std::vector<std::int64_t> integers(std::string_view name) const;  // a list of integers

 private:
  const Value* params_;
};

// What a task's run function sees: its parameters and the read-only state its
// analysis's setup made once in this worker. Lives for one task only.
class TaskContext {
 public:
  TaskContext(const Value& params, const std::any& setup_state)
      : params_(params), setup_state_(&setup_state) {}

  const Params& params() const noexcept { return params_; }

  // The setup's state as a T (the type the setup returned); throws
  // plugin_error when the analysis has no setup or returned another type.
  template <class T>
  const T& setup_state() const {
    if (const T* state = std::any_cast<T>(setup_state_)) return *state;
    throw Error(ErrorKind::plugin_error, "setup state is missing or of another type");
  }

 private:
  Params params_;
  const std::any* setup_state_;
};

// A problem a check found in a parameter set: the parameter's key ("" for
// the set as a whole) and what is wrong with it.
struct ParamProblem {
  std::string param;
  std::string message;
};

// A named, versioned computation. `setup` (optional) runs once per worker and
// its result is shared read-only by every task of that worker; `run` runs once
// per task. Either may throw: the SDK turns exceptions into TaskErrors inside
// the plugin, so none crosses into the worker. `check` (optional) looks at a
// whole parameter set cheaply, without the setup, and lists every problem it
// finds; `mathpool validate` and `run` call it before any task.
struct Analysis {
  std::string name;
  std::string version;
  std::string description;
  std::vector<ParamDoc> params;
  std::vector<FieldDoc> results;
  bool open_params = false;  // accept parameters not listed in `params`
  std::function<std::any()> setup;
  std::function<Value(const TaskContext&)> run;
  std::function<std::vector<ParamProblem>(const Value& params)> check;
};

// Collects the analyses a plugin declares. Used only during plugin loading.
// (Not PoolRegistry, which keeps pools in a host program.)
class AnalysisRegistry {
 public:
  void add(Analysis analysis) { analyses_.push_back(std::move(analysis)); }
  std::vector<Analysis>& analyses() noexcept { return analyses_; }

 private:
  std::vector<Analysis> analyses_;
};

}  // namespace mathpool
