#include "mathpool/error.hpp"

#include <array>
#include <utility>

namespace mathpool {
namespace {
constexpr std::array<std::pair<ErrorKind, std::string_view>, 11> kKindNames{{
    {ErrorKind::invalid_params, "invalid_params"},
    {ErrorKind::plugin_error, "plugin_error"},
    {ErrorKind::timeout, "timeout"},
    {ErrorKind::crashed, "crashed"},
    {ErrorKind::memory, "memory"},
    {ErrorKind::io_error, "io_error"},
    {ErrorKind::invalid_config, "invalid_config"},
    {ErrorKind::result_too_large, "result_too_large"},
    {ErrorKind::protocol_error, "protocol_error"},
    {ErrorKind::start_failed, "start_failed"},
    {ErrorKind::misuse, "misuse"},
}};
}  // namespace

std::string_view to_string(ErrorKind kind) noexcept {
  for (const auto& [k, name] : kKindNames)
    if (k == kind) return name;
  return "plugin_error";
}

ErrorKind error_kind_from_string(std::string_view name) {
  for (const auto& [k, n] : kKindNames)
    if (n == name) return k;
  throw Error(ErrorKind::invalid_config, "unknown error kind '" + std::string(name) + "'");
}

Error::Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
Error::~Error() = default;

InvalidParams::InvalidParams(const std::string& message) : Error(ErrorKind::invalid_params, message) {}
InvalidParams::~InvalidParams() = default;

}  // namespace mathpool
