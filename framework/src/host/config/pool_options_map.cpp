#include "pool_options_map.hpp"

#include "config_units.hpp"
#include "pool_options_table.hpp"

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>

#include "mathpool/config.hpp"

namespace mathpool::detail {
namespace {

[[noreturn]] void fail(std::string_view key, const std::string& why) {
  throw Error(ErrorKind::invalid_config, fmt::format("pool option '{}': {}", key, why));
}

// A short rendering of a value for messages.
std::string shown(const Value& v) {
  std::string text = is_big_integer(v) ? big_integer_text(v) : v.dump(-1, ' ', false, Value::error_handler_t::replace);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

// A number as the config would write it: the text its parsers take.
std::string number_text(const Value& v) {
  if (v.is_number_unsigned()) return std::to_string(v.get<std::uint64_t>());
  if (v.is_number_integer()) return std::to_string(v.get<std::int64_t>());
  return fmt::format("{}", v.get<double>());
}

// An integer in [min, INT32_MAX], or `word` (when given) for `word_value`.
int integer(const Value& v, std::string_view key, int min, std::string_view word = {}, int word_value = 0) {
  if (!word.empty() && v.is_string() && v.get<std::string>() == word) return word_value;
  const std::string expected =
      word.empty() ? fmt::format("an integer >= {}", min) : fmt::format("an integer >= {} or \"{}\"", min, word);
  if (!v.is_number_integer()) fail(key, fmt::format("must be {}, got {}", expected, shown(v)));
  if (v.is_number_unsigned() ? v.get<std::uint64_t>() > std::uint64_t(INT32_MAX) : v.get<std::int64_t>() > INT32_MAX)
    fail(key, fmt::format("must be at most {}, got {}", INT32_MAX, shown(v)));
  const std::int64_t n = v.get<std::int64_t>();
  if (n < min) fail(key, fmt::format("must be at least {}, got {}", min, n));
  return static_cast<int>(n);
}

// A duration as parse_duration() reads it: text, a number of seconds, or null (none).
std::optional<std::chrono::milliseconds> duration(const Value& v, std::string_view key) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_string() && !v.is_number())
    fail(key, fmt::format("must be a duration such as \"30s\", a number of seconds, or None; got {}", shown(v)));
  try {
    return duration_from_text(v.is_string() ? v.get<std::string>() : number_text(v));
  } catch (const std::invalid_argument& e) {
    fail(key, e.what());
  }
}

std::string choice(const Value& v, std::string_view key, std::initializer_list<std::string_view> names) {
  std::string list;
  for (auto n : names) list += (list.empty() ? "" : ", ") + std::string(n);
  if (v.is_string() && std::find(names.begin(), names.end(), v.get<std::string>()) != names.end())
    return v.get<std::string>();
  fail(key, fmt::format("{} is not one of: {}", shown(v), list));
}

std::filesystem::path path(const Value& v, std::string_view key) {
  if (!v.is_string() || v.get<std::string>().empty())
    fail(key, fmt::format("must be a path or a list of paths, got {}", shown(v)));
  return v.get<std::string>();
}

}  // namespace

// The config's pool: keys from the one table of options (pool_options_table.hpp),
// then the config's plugin_path and the command's allow_insecure_plugins.
const std::vector<std::string_view>& pool_option_keys() {
  static const std::vector<std::string_view> keys = [] {
    std::vector<std::string_view> names;
    for (const auto& field : pool_option_fields())
      if (field.in_config) names.push_back(field.name);
    names.push_back("plugin_path");
    names.push_back("allow_insecure_plugins");
    return names;
  }();
  return keys;
}

PoolOptions pool_options_from_map(const Value& map) {
  PoolOptions o;
  if (map.is_null()) return o;
  if (!map.is_object()) throw Error(ErrorKind::invalid_config, "pool options must be a map of option names to values");
  const auto& keys = pool_option_keys();
  for (const auto& item : map.items()) {
    const std::string& key = item.key();
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      std::string list;
      for (auto k : keys) list += (list.empty() ? "" : ", ") + std::string(k);
      throw Error(ErrorKind::invalid_config, fmt::format("unknown pool option '{}' (expected one of: {})", key, list));
    }
    const Value& v = item.value();
    if (key == "workers") {
      o.workers = integer(v, key, 1, "auto", 0);
    } else if (key == "start") {
      o.start = choice(v, key, {"zygote", "spawn"}) == "spawn" ? StartMode::spawn : StartMode::zygote;
    } else if (key == "isolation") {
      o.isolation = choice(v, key, {"worker", "task"}) == "task" ? Isolation::task : Isolation::worker;
    } else if (key == "task_timeout") {
      o.task_timeout = duration(v, key);
    } else if (key == "setup_timeout") {
      const auto limit = duration(v, key);
      if (!limit) fail(key, "must be a duration; a setup may not hang forever");
      o.setup_timeout = *limit;
    } else if (key == "memory_limit") {
      if (v.is_null()) {
        o.memory_limit = 0;
      } else {
        if (!v.is_string() && !v.is_number_integer())
          fail(key, fmt::format("must be a size such as \"2GiB\", a number of bytes, or None; got {}", shown(v)));
        try {
          o.memory_limit = memory_from_text(v.is_string() ? v.get<std::string>() : number_text(v));
        } catch (const std::invalid_argument& e) {
          fail(key, e.what());
        }
      }
    } else if (key == "max_tasks_per_worker") {
      o.max_tasks_per_worker = integer(v, key, 0);
    } else if (key == "retries") {
      o.retries = integer(v, key, 0);
    } else if (key == "chunk_size") {
      o.chunk_size = integer(v, key, 1, "auto", 0);
    } else if (key == "plugin_path") {
      if (v.is_array()) {
        for (const Value& p : v) o.plugin_paths.push_back(path(p, key));
      } else if (!v.is_null()) {
        o.plugin_paths.push_back(path(v, key));
      }
    } else if (key == "allow_insecure_plugins") {
      if (!v.is_boolean()) fail(key, fmt::format("must be True or False, got {}", shown(v)));
      o.allow_insecure_plugins = v.get<bool>();
    }
  }
  return o;
}

}  // namespace mathpool::detail
