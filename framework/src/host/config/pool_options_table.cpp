#include "pool_options_table.hpp"

#include <array>
#include <charconv>
#include <stdexcept>

#include <fmt/format.h>

#include "config_units.hpp"
#include "scan.hpp"
#include "yaml_value.hpp"

namespace mathpool::detail {
namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

// An integer from a config's text or a program's number, at least `min`.
int integer(const Value& v, int min) {
  std::int64_t n = 0;
  if (v.is_string()) {
    const std::string text = v.get<std::string>();
    if (!scan::is_integer(text)) bad(fmt::format("{} is not an integer", quote_short(text)));
    const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
    if (std::from_chars(begin, text.data() + text.size(), n).ec != std::errc())
      bad(fmt::format("{} is out of range", quote_short(text)));
  } else if (v.is_number_integer()) {
    n = v.get<std::int64_t>();
  } else {
    bad(fmt::format("{} is not an integer", quote_short(v.dump())));
  }
  if (n < min) bad(fmt::format("must be at least {}, got {}", min, n));
  if (n > INT32_MAX) bad(fmt::format("must be at most {}, got {}", INT32_MAX, n));
  return int(n);
}

std::string text_of(const Value& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number()) return v.dump();
  if (v.is_null()) return "none";
  bad(fmt::format("{} is not a string", quote_short(v.dump())));
}

bool is_word(const Value& v, std::string_view word) { return v.is_string() && v.get<std::string>() == word; }

std::string duration_text(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? fmt::format("{}s", d.count() / 1000) : fmt::format("{}ms", d.count());
}

template <typename Enum>
Enum one_of(const Value& v, std::string_view first, Enum a, std::string_view second, Enum b) {
  const std::string text = text_of(v);
  if (text == first) return a;
  if (text == second) return b;
  bad(fmt::format("'{}' is not one of: {}, {}", text, first, second));
}

bool boolean(const Value& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (is_word(v, "true")) return true;
  if (is_word(v, "false")) return false;
  bad(fmt::format("{} is not true or false", quote_short(v.dump())));
}

std::vector<std::string> strings(const Value& v) {
  std::vector<std::string> out;
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) bad("must be a list of strings");
  for (const Value& item : v) {
    if (!item.is_string()) bad("must be a list of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

using O = PoolOptions;
const std::array<PoolOptionField, 14> kFields{{
    {"workers", "worker processes; auto: the cores this process may run on", true,
     [](const O& o) { return o.workers == 0 ? Value("auto") : Value(o.workers); },
     [](O& o, const Value& v) { o.workers = is_word(v, "auto") ? 0 : integer(v, 1); }},
    {"start", "zygote: fork workers from a warm template; spawn: fresh processes", true,
     [](const O& o) { return Value(o.start == StartMode::zygote ? "zygote" : "spawn"); },
     [](O& o, const Value& v) { o.start = one_of(v, "zygote", StartMode::zygote, "spawn", StartMode::spawn); }},
    {"isolation", "worker: tasks share their worker; task: a fresh process per task", true,
     [](const O& o) { return Value(o.isolation == Isolation::task ? "task" : "worker"); },
     [](O& o, const Value& v) { o.isolation = one_of(v, "worker", Isolation::worker, "task", Isolation::task); }},
    {"task_timeout", "none, or a task's time limit (ms, s, m, h; a bare number is seconds)", true,
     [](const O& o) { return o.task_timeout ? Value(duration_text(*o.task_timeout)) : Value("none"); },
     [](O& o, const Value& v) { o.task_timeout = v.is_null() ? std::nullopt : duration_from_text(text_of(v)); }},
    {"memory_limit", "none, or bytes of address space per worker (KiB, MiB, GiB)", true,
     [](const O& o) { return o.memory_limit == 0 ? Value("none") : Value(o.memory_limit); },
     [](O& o, const Value& v) { o.memory_limit = v.is_null() ? 0 : memory_from_text(text_of(v)); }},
    {"max_tasks_per_worker", "recycle a worker after this many tasks; 0: never", true,
     [](const O& o) { return Value(o.max_tasks_per_worker); },
     [](O& o, const Value& v) { o.max_tasks_per_worker = integer(v, 0); }},
    {"retries", "re-runs of a task whose worker died", true, [](const O& o) { return Value(o.retries); },
     [](O& o, const Value& v) { o.retries = integer(v, 0); }},
    {"chunk_size", "tasks a worker holds at once; auto: sized from measured task times", true,
     [](const O& o) { return o.chunk_size == 0 ? Value("auto") : Value(o.chunk_size); },
     [](O& o, const Value& v) { o.chunk_size = is_word(v, "auto") ? 0 : integer(v, 1); }},
    {"setup_timeout", "how long loading the plugins and running the setups may take", true,
     [](const O& o) { return Value(duration_text(o.setup_timeout)); },
     [](O& o, const Value& v) {
       const auto limit = duration_from_text(text_of(v));
       if (!limit) bad("must be a duration; a setup may not hang forever");
       o.setup_timeout = *limit;
     }},
    {"plugin_paths", "plugin files or directories, searched after the default places", false,
     [](const O& o) {
       Value paths = Value::array();
       for (const auto& p : o.plugin_paths) paths.push_back(p.string());
       return paths;
     },
     [](O& o, const Value& v) {
       o.plugin_paths.clear();
       for (const auto& p : strings(v)) o.plugin_paths.emplace_back(p);
     }},
    {"default_plugin_paths", "also search the installed plugin directory and MATHPOOL_PLUGIN_PATH", false,
     [](const O& o) { return Value(o.default_plugin_paths); },
     [](O& o, const Value& v) { o.default_plugin_paths = boolean(v); }},
    {"allow_insecure_plugins", "load plugin files that other users can write to", false,
     [](const O& o) { return Value(o.allow_insecure_plugins); },
     [](O& o, const Value& v) { o.allow_insecure_plugins = boolean(v); }},
    {"worker_program", "the worker program; empty: the one installed with the library", false,
     [](const O& o) { return Value(o.worker_program.string()); },
     [](O& o, const Value& v) { o.worker_program = text_of(v); }},
    {"preload", "all, or the analyses whose setups run when the pool starts", false,
     [](const O& o) { return o.preload ? Value(*o.preload) : Value("all"); },
     [](O& o, const Value& v) {
       if (is_word(v, "all") || v.is_null()) o.preload.reset();
       else o.preload = strings(v);
     }},
}};

// A field added to PoolOptions without a row here fails this check.
static_assert(sizeof(PoolOptions) == 168, "PoolOptions changed: add its field to kFields");

}  // namespace

std::span<const PoolOptionField> pool_option_fields() { return kFields; }

const PoolOptionField* find_pool_option(std::string_view name) {
  for (const auto& field : kFields)
    if (field.name == name) return &field;
  return nullptr;
}

std::string pool_option_names(bool config_only) {
  std::string names;
  for (const auto& field : kFields)
    if (field.in_config || !config_only) names += fmt::format("{}{}", names.empty() ? "" : ", ", field.name);
  return names;
}

}  // namespace mathpool::detail
