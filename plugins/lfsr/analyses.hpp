// The four lfsr analyses: run functions and the once-per-worker setup.
#pragma once

#include <any>
#include <cstdint>
#include <memory>

#include <lfsr/factor_cache.hpp>
#include <mathpool/analysis.hpp>

namespace lfsr_plugin {

// Largest state space `list_cycles` will print.
inline constexpr std::uint64_t kMaxListedStates = std::uint64_t{1} << 16;

// The shared, read-only cache of q^m - 1 factorisations (built once per worker).
using SharedCache = std::shared_ptr<const lfsr::FactorCache>;
std::any make_shared_cache();

// Bytes `method: enumerate` may use: 1 GiB, or half of RLIMIT_AS when lower.
std::uint64_t enumeration_memory_limit();

mathpool::Value run_cycles(const mathpool::TaskContext& task);
mathpool::Value run_polynomial(const mathpool::TaskContext& task);
mathpool::Value run_sequence(const mathpool::TaskContext& task);
mathpool::Value run_synthesis(const mathpool::TaskContext& task);

}  // namespace lfsr_plugin
