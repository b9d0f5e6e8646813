#include "options_value.hpp"

#include <fmt/format.h>

namespace mathpool::detail {

// A field added to PoolOptions must be added here too (and to the test
// OptionsValue.EveryFieldSurvivesTheRoundTrip); this catches a forgotten one.
static_assert(sizeof(PoolOptions) == 168, "PoolOptions changed: update options_to_value and options_from_value");

Value options_to_value(const PoolOptions& o) {
  Value paths = Value::array();
  for (const auto& p : o.plugin_paths) paths.push_back(p.string());
  return {{"workers", o.workers},
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
          {"worker_program", o.worker_program.string()},
          {"preload", o.preload ? Value(*o.preload) : Value("all")}};
}

PoolOptions options_from_value(const Value& map) {
  try {
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
    if (map.contains("worker_program")) o.worker_program = map.at("worker_program").get<std::string>();
    if (map.at("preload").is_array()) o.preload = map.at("preload").get<std::vector<std::string>>();
    return o;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::invalid_config, fmt::format("malformed pool options: {}", e.what()));
  }
}

}  // namespace mathpool::detail
