// Any text given to the config loader either parses or fails with a
// ConfigError; nothing else may escape, crash or hang.
#include <cstdint>
#include <string>

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
  } catch (const mathpool::ConfigError&) {
  }
  return 0;
}
