// mathpool/plugin.hpp: the one entry point of a plugin. Include this in the
// plugin's source and declare its analyses:
//
//   #include <mathpool/plugin.hpp>
//   MATHPOOL_PLUGIN("example", "1.0.0") {
//     registry.add({...});
//   }
//
// Build the plugin with mathpool_add_plugin() from the CMake package.
#pragma once

#include <cstdint>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "mathpool/analysis.hpp"

// The plugin API version. A host refuses plugins built for another version,
// naming both. Version 2: AnalysisRegistry (was Registry), Analysis::check.
#ifndef MATHPOOL_PLUGIN_API_VERSION
#define MATHPOOL_PLUGIN_API_VERSION 2
#endif

#define MATHPOOL_STRINGIFY_(x) #x
#define MATHPOOL_STRINGIFY(x) MATHPOOL_STRINGIFY_(x)
// What must match between a plugin and its host for Values and std types to cross.
#define MATHPOOL_BUILD_ABI                                              \
  "cxx11abi=" MATHPOOL_STRINGIFY(_GLIBCXX_USE_CXX11_ABI) ";json="       \
  MATHPOOL_STRINGIFY(NLOHMANN_JSON_VERSION_MAJOR) "."                   \
  MATHPOOL_STRINGIFY(NLOHMANN_JSON_VERSION_MINOR)

namespace mathpool {

inline constexpr std::uint32_t kPluginApiVersion = 2;
inline constexpr const char* kPluginEntrySymbol = "mathpool_plugin_entry";

// An analysis as the worker sees it: functions that never throw.
struct Outcome {
  bool ok = false;
  Value result;
  TaskError error;
};
struct GuardedAnalysis {
  Analysis doc;  // run/setup left empty; the guarded versions below are used
  std::function<std::any(TaskError*)> setup;  // empty when there is no setup
  std::function<Outcome(const Value& params, const std::any& setup_state)> run;
  // Empty when the analysis has no check; an exception becomes one problem.
  std::function<std::vector<ParamProblem>(const Value& params)> check;
};

// What the entry point returns. `api_version` comes first so a host can check
// it before it reads anything else.
struct PluginDescriptor {
  std::uint32_t api_version;
  const char* name;
  const char* version;
  const char* build_abi;
  // Fills `out`; returns false with `error` set when the plugin cannot declare.
  bool (*declare)(std::vector<GuardedAnalysis>* out, std::string* error) noexcept;
};

namespace detail {

// Turns whatever is in flight into a TaskError. Call only inside a catch block.
inline TaskError current_exception_as_error() noexcept {
  try {
    throw;
  } catch (const Error& e) {
    return {e.kind(), e.what()};
  } catch (const std::bad_alloc&) {
    return {ErrorKind::memory, "out of memory (std::bad_alloc)"};
  } catch (const std::exception& e) {
    return {ErrorKind::plugin_error, e.what()};
  } catch (...) {
    return {ErrorKind::plugin_error, "unknown exception (not derived from std::exception)"};
  }
}

// Wraps the analyses' functions so no exception leaves the plugin.
inline bool declare_guarded(void (*declare_analyses)(AnalysisRegistry&),
                            std::vector<GuardedAnalysis>* out, std::string* error) noexcept {
  try {
    AnalysisRegistry registry;
    declare_analyses(registry);
    for (Analysis& analysis : registry.analyses()) {
      GuardedAnalysis guarded;
      if (analysis.setup) {
        guarded.setup = [setup = analysis.setup](TaskError* failure) -> std::any {
          try {
            return setup();
          } catch (...) {
            *failure = current_exception_as_error();
            // An empty message must still read as a failure, not a success.
            if (failure->message.empty()) failure->message = "the setup threw an exception with no message";
            return {};
          }
        };
      }
      guarded.run = [run = analysis.run](const Value& params, const std::any& state) -> Outcome {
        Outcome outcome;
        try {
          if (!run) throw Error(ErrorKind::plugin_error, "analysis has no run function");
          outcome.result = run(TaskContext(params, state));
          outcome.ok = true;
        } catch (...) {
          outcome.error = current_exception_as_error();
        }
        return outcome;
      };
      if (analysis.check) {
        guarded.check = [check = analysis.check](const Value& params) -> std::vector<ParamProblem> {
          try {
            return check(params);
          } catch (...) {
            return {ParamProblem{"", current_exception_as_error().message}};
          }
        };
      }
      analysis.setup = nullptr;
      analysis.run = nullptr;
      analysis.check = nullptr;
      guarded.doc = std::move(analysis);
      out->push_back(std::move(guarded));
    }
    return true;
  } catch (...) {
    *error = current_exception_as_error().message;
    return false;
  }
}

}  // namespace detail
}  // namespace mathpool

#if defined(_WIN32)
#define MATHPOOL_EXPORT __declspec(dllexport)
#else
#define MATHPOOL_EXPORT __attribute__((visibility("default")))
#endif

// Defines the plugin's entry point; the braces that follow are the body of a
// function `void(mathpool::AnalysisRegistry& registry)` that declares the analyses.
#define MATHPOOL_PLUGIN(PLUGIN_NAME, PLUGIN_VERSION)                                  \
  static void mathpool_declare_analyses_(::mathpool::AnalysisRegistry& registry);             \
  static bool mathpool_declare_(std::vector<::mathpool::GuardedAnalysis>* out,        \
                                std::string* error) noexcept {                        \
    return ::mathpool::detail::declare_guarded(&mathpool_declare_analyses_, out, error); \
  }                                                                                   \
  extern "C" MATHPOOL_EXPORT const ::mathpool::PluginDescriptor* mathpool_plugin_entry() { \
    static const ::mathpool::PluginDescriptor descriptor{                             \
        MATHPOOL_PLUGIN_API_VERSION, PLUGIN_NAME, PLUGIN_VERSION, MATHPOOL_BUILD_ABI, \
        &mathpool_declare_};                                                          \
    return &descriptor;                                                               \
  }                                                                                   \
  static void mathpool_declare_analyses_(::mathpool::AnalysisRegistry& registry)
