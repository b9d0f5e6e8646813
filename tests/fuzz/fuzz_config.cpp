// Any text given to the config loader either parses or fails with a
// ConfigError that names the file; nothing else may escape, crash, hang or
// grow large (run_fuzz.cmake sets per-input time and memory limits, which the
// seeds' alias bombs, huge scalars and deep nesting press against).
#include <cstdint>
#include <string>
#include <string_view>

#include "mathpool/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    mathpool::RunConfig config = mathpool::parse_config(text, "/nonexistent/fuzz.yaml");
    std::size_t tasks = 0;
    for (const auto& entry : config.analyses) {
      std::size_t n = static_cast<std::size_t>(entry.repeat);
      for (const auto& axis : entry.sweep) n *= axis.values.size();
      tasks += n;
    }
    if (tasks <= 10000) mathpool::expand_tasks(config);
  } catch (const mathpool::ConfigError& e) {
    if (std::string_view(e.what()).rfind("/nonexistent/fuzz.yaml:", 0) != 0) __builtin_trap();
  }
  return 0;
}
