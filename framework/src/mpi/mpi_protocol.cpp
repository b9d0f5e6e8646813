#include "mpi_protocol.hpp"

#include <algorithm>
#include <climits>

#include <fmt/format.h>

#include "msgpack_json.hpp"
#include "options_value.hpp"

namespace mathpool::mpi_detail {

std::string encode_options(const PoolOptions& options) {
  Value map = detail::options_to_value(options);
  map.erase("worker_program");  // a path on this machine: each node uses its own
  std::string out;
  detail::append_msgpack(out, map);
  return out;
}

PoolOptions decode_options(std::string_view bytes) {
  try {
    return detail::options_from_value(detail::msgpack_to_value(bytes));
  } catch (const std::exception& e) {
    throw Error(ErrorKind::invalid_config, fmt::format("pool options from rank 0: {}", e.what()));
  }
}

std::string encode_open(std::chrono::milliseconds node_timeout, const PoolOptions& options) {
  std::string out;
  put<std::uint64_t>(out, std::uint64_t(std::max<std::int64_t>(node_timeout.count(), 0)));
  out += encode_options(options);
  return out;
}

PoolOptions decode_open(std::string_view bytes, std::chrono::milliseconds& node_timeout) {
  Reader in(bytes);
  const auto ms = in.get<std::uint64_t>();
  if (!in.ok() || ms > std::uint64_t(INT64_MAX))
    throw Error(ErrorKind::invalid_config, "pool options from rank 0: truncated");
  node_timeout = std::chrono::milliseconds(std::int64_t(ms));
  return decode_options(bytes.substr(sizeof(std::uint64_t)));
}

void append_task(std::string& out, std::uint64_t id, std::string_view analysis, std::string_view params) {
  put<std::uint64_t>(out, id);
  put<std::uint16_t>(out, std::uint16_t(analysis.size()));
  out += analysis;
  put<std::uint32_t>(out, std::uint32_t(params.size()));
  out += params;
}

bool read_task(Reader& in, WireTask& task) {
  if (in.done()) return false;
  task.id = in.get<std::uint64_t>();
  task.analysis = in.bytes(in.get<std::uint16_t>());
  task.params = in.bytes(in.get<std::uint32_t>());
  return in.ok();
}

void append_result(std::string& out, std::uint64_t id, const detail::RawResult& result) {
  put<std::uint64_t>(out, id);
  put<std::uint8_t>(out, result.error ? std::uint8_t(1 + int(result.error->kind)) : 0);
  put<std::int32_t>(out, result.worker);
  put<std::int32_t>(out, result.attempts);
  put<double>(out, result.seconds);
  const std::string& bytes = result.error ? result.error->message : result.payload;
  put<std::uint32_t>(out, std::uint32_t(bytes.size()));
  out += bytes;
}

bool read_result(Reader& in, std::uint64_t& id, detail::RawResult& result) {
  if (in.done()) return false;
  id = in.get<std::uint64_t>();
  const auto outcome = in.get<std::uint8_t>();
  result.worker = in.get<std::int32_t>();
  result.attempts = in.get<std::int32_t>();
  result.seconds = in.get<double>();
  const std::string_view bytes = in.bytes(in.get<std::uint32_t>());
  if (!in.ok() || outcome > 1 + int(ErrorKind::invalid_config)) return false;
  if (outcome == 0) {
    result.error.reset();
    result.payload.assign(bytes);
  } else {
    result.error = TaskError{ErrorKind(outcome - 1), std::string(bytes)};
    result.payload.clear();
  }
  return true;
}

}  // namespace mathpool::mpi_detail
