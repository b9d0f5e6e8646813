#include "mpi_protocol.hpp"

#include <fmt/format.h>

#include "../common/msgpack_json.hpp"

namespace mathpool::mpi_detail {

std::string encode_options(const PoolOptions& o) {
  Value paths = Value::array();
  for (const auto& p : o.plugin_paths) paths.push_back(p.string());
  Value map = {{"workers", o.workers},
               {"start", o.start == StartMode::zygote ? "zygote" : "spawn"},
               {"isolation", o.isolation == Isolation::task ? "task" : "worker"},
               {"task_timeout_ms", o.task_timeout ? Value(o.task_timeout->count()) : Value()},
               {"memory_limit", o.memory_limit},
               {"max_tasks_per_worker", o.max_tasks_per_worker},
               {"retries", o.retries},
               {"setup_timeout_ms", o.setup_timeout.count()},
               {"chunk_size", o.chunk_size},
               {"plugin_paths", paths},
               {"default_plugin_paths", o.default_plugin_paths},
               {"allow_insecure_plugins", o.allow_insecure_plugins},
               {"preload", o.preload ? Value(*o.preload) : Value()}};
  std::string out;
  detail::append_msgpack(out, map);
  return out;
}

PoolOptions decode_options(std::string_view bytes) {
  try {
    const Value map = detail::msgpack_to_value(bytes);
    PoolOptions o;
    o.workers = map.at("workers").get<int>();
    o.start = map.at("start") == "zygote" ? StartMode::zygote : StartMode::spawn;
    o.isolation = map.at("isolation") == "task" ? Isolation::task : Isolation::worker;
    if (!map.at("task_timeout_ms").is_null())
      o.task_timeout = std::chrono::milliseconds(map.at("task_timeout_ms").get<long long>());
    o.memory_limit = map.at("memory_limit").get<std::int64_t>();
    o.max_tasks_per_worker = map.at("max_tasks_per_worker").get<int>();
    o.retries = map.at("retries").get<int>();
    o.setup_timeout = std::chrono::milliseconds(map.at("setup_timeout_ms").get<long long>());
    o.chunk_size = map.at("chunk_size").get<int>();
    for (const Value& p : map.at("plugin_paths")) o.plugin_paths.emplace_back(p.get<std::string>());
    o.default_plugin_paths = map.at("default_plugin_paths").get<bool>();
    o.allow_insecure_plugins = map.at("allow_insecure_plugins").get<bool>();
    if (!map.at("preload").is_null()) o.preload = map.at("preload").get<std::vector<std::string>>();
    return o;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::invalid_config, fmt::format("malformed pool options from rank 0: {}", e.what()));
  }
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
