// config_units.hpp: durations and memory sizes as a config writes them. The
// public parse_duration/parse_memory (mathpool/config.hpp) wrap these and
// throw mathpool::Error; inside the library they throw std::invalid_argument,
// which the config reader turns into a file:line error.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace mathpool::detail {

// "30s", "250ms", "2m", "1h", a bare number of seconds, or "none" (nullopt).
std::optional<std::chrono::milliseconds> duration_from_text(const std::string& text);
// "2GiB", "512MiB", "1024KiB", a bare number of bytes, or "none" (0); at least 1MiB.
std::int64_t memory_from_text(const std::string& text);

}  // namespace mathpool::detail
