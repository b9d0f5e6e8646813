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

void append_entry_item(std::string& out, std::uint64_t entry_id, std::string_view wire) {
  put<std::uint8_t>(out, 0);
  put<std::uint64_t>(out, entry_id);
  put<std::uint32_t>(out, std::uint32_t(wire.size()));
  out += wire;
}

void append_run_head(std::string& out, std::uint64_t entry_id, std::uint64_t first_index, std::uint32_t count) {
  put<std::uint8_t>(out, 1);
  put<std::uint64_t>(out, entry_id);
  put<std::uint64_t>(out, first_index);
  put<std::uint32_t>(out, count);
}

bool read_ranges_item(Reader& in, RangesItem& item) {
  if (in.done()) return false;
  const auto kind = in.get<std::uint8_t>();
  item.entry = kind == 0;
  item.entry_id = in.get<std::uint64_t>();
  if (item.entry) {
    item.wire = in.bytes(in.get<std::uint32_t>());
  } else {
    item.first_index = in.get<std::uint64_t>();
    item.count = in.get<std::uint32_t>();
    item.ids = in.bytes(std::size_t(item.count) * sizeof(std::uint64_t));
  }
  return in.ok() && kind <= 1;
}

bool readable_ranges(std::string_view body) {
  Reader in(body);
  RangesItem item;
  while (!in.done())
    if (!read_ranges_item(in, item)) return false;
  return true;
}

void append_result(std::string& out, std::uint64_t id, const detail::RawResult& result) {
  put<std::uint64_t>(out, id);
  put<std::uint8_t>(out, result.error ? std::uint8_t(1 + int(result.error->kind)) : 0);
  put<std::uint8_t>(out, result.line ? 1 : 0);
  put<std::int32_t>(out, result.worker);
  put<std::int32_t>(out, result.attempts);
  put<double>(out, result.seconds);
  const std::string_view bytes = result.error ? std::string_view(result.error->message)
                                 : result.line ? std::string_view()
                                               : std::string_view(result.payload);
  put<std::uint32_t>(out, std::uint32_t(bytes.size()));
  out += bytes;
  if (result.line) {
    put<std::uint32_t>(out, std::uint32_t(result.payload.size()));
    out += result.payload;
  }
}

bool read_result(Reader& in, std::uint64_t& id, detail::RawResult& result) {
  if (in.done()) return false;
  id = in.get<std::uint64_t>();
  const auto outcome = in.get<std::uint8_t>();
  const auto line = in.get<std::uint8_t>();
  result.worker = in.get<std::int32_t>();
  result.attempts = in.get<std::int32_t>();
  result.seconds = in.get<double>();
  const std::string_view bytes = in.bytes(in.get<std::uint32_t>());
  const std::string_view record = line == 1 ? in.bytes(in.get<std::uint32_t>()) : std::string_view();
  if (!in.ok() || outcome > 1 + int(ErrorKind::misuse) || line > 1) return false;
  result.line = line == 1;
  if (outcome == 0) result.error.reset();
  else result.error = TaskError{ErrorKind(outcome - 1), std::string(bytes)};
  if (result.line) result.payload.assign(record);
  else if (outcome == 0) result.payload.assign(bytes);
  else result.payload.clear();
  return true;
}

}  // namespace mathpool::mpi_detail
