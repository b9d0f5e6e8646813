// mathpool/error.hpp: the one error model of mathpool.
//
// Inside a process, code may throw mathpool::Error (or anything else). At every
// plugin or process boundary an exception becomes a structured TaskError, which
// is what result records carry.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace mathpool {

// Why a task did not succeed. The names are the `kind` strings of result records.
enum class ErrorKind {
  invalid_params,  // the parameters are wrong: the caller must change them
  plugin_error,    // the analysis failed (an exception, a bug, an unmet precondition)
  timeout,         // the task ran past its time limit and its worker was stopped
  crashed,         // the worker died (signal or exit status in the message)
  memory,          // the worker ran out of its memory limit
  io_error,        // the host could not read or write a file (never a task's status)
  invalid_config,  // a run configuration that cannot be used (never a task's status)
  result_too_large,  // the task's result passes the protocol's limits (256 MiB encoded, 200 levels deep)
  protocol_error,    // the host refused the worker's reply to the task (malformed, forged)
  start_failed,      // a pool could not start: a plugin that does not load, no worker program (host only)
  misuse,            // the host API used against its contract: a shut-down registry, another
                     // process's pool, options set too late (host only)
};

// The one table of error kinds: docs/errors.md lists each with where it
// appears. Task kinds reach result records; host kinds only exceptions.
constexpr bool is_task_error_kind(ErrorKind kind) noexcept {
  return kind != ErrorKind::io_error && kind != ErrorKind::invalid_config && kind != ErrorKind::start_failed &&
         kind != ErrorKind::misuse;
}

std::string_view to_string(ErrorKind kind) noexcept;
// Parses a kind name; throws mathpool::Error (invalid_config) for an unknown one.
ErrorKind error_kind_from_string(std::string_view name);

// A structured error: a kind and a one-line message. Plain value type.
struct TaskError {
  ErrorKind kind = ErrorKind::plugin_error;
  std::string message;
};

// The exception type of mathpool. Thrown inside a process, caught at the
// boundary and turned into a TaskError of the same kind.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message);
  ~Error() override;  // key function: RTTI lives in libmathpool_sdk
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// Thrown by analyses (and by Params accessors) for bad parameters; the message
// names the parameter.
class InvalidParams : public Error {
 public:
  explicit InvalidParams(const std::string& message);
  ~InvalidParams() override;
};

}  // namespace mathpool
