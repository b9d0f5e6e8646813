// The four lfsr analyses: run functions and the once-per-worker setup.
#pragma once

#include <any>
#include <cstddef>
#include <cstdint>
#include <memory>

#include <lfsr/factor_cache.hpp>
#include <mathpool/analysis.hpp>

namespace lfsr_plugin {

// Largest state space `list_cycles` will print.
inline constexpr std::uint64_t kMaxListedStates = std::uint64_t{1} << 16;

// The worker's cache of q^m - 1 factorisations: created empty by the setup,
// filled by the tasks (thread-safe, see FactorCache), lives as long as the
// worker. Bounded: beyond the budget a task keeps new entries to itself. 4 MiB
// is room for thousands of (q, m): an entry of a dozen small primes is ~300 bytes.
using SharedCache = std::shared_ptr<lfsr::FactorCache>;
inline constexpr std::size_t kLearnBudgetBytes = std::size_t{4} << 20;
std::any make_shared_cache();

// Bytes `method: enumerate` may use: 1 GiB, or half of RLIMIT_AS when lower.
std::uint64_t enumeration_memory_limit();

mathpool::Value run_cycles(const mathpool::TaskContext& task);
mathpool::Value run_polynomial(const mathpool::TaskContext& task);
mathpool::Value run_sequence(const mathpool::TaskContext& task);
mathpool::Value run_synthesis(const mathpool::TaskContext& task);
// The parameter checks of each analysis (Analysis::check): every problem found.
std::vector<mathpool::ParamProblem> check_cycles(const mathpool::Value& params);
std::vector<mathpool::ParamProblem> check_polynomial(const mathpool::Value& params);
std::vector<mathpool::ParamProblem> check_sequence(const mathpool::Value& params);
std::vector<mathpool::ParamProblem> check_synthesis(const mathpool::Value& params);

}  // namespace lfsr_plugin
