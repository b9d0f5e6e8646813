// lfsr/factor_cache.hpp: factorisations of q^m - 1, split by cyclotomic factors.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "lfsr/bigint.hpp"

namespace lfsr {

// Prime factorisation: (prime, exponent) pairs by ascending prime.
using Factorization = std::vector<std::pair<BigInt, unsigned>>;

// Factors an integer >= 1: trial division, then ECM (FLINT), primes by BPSW.
// Only numbers ECM cannot split go to fmpz_factor, whose quadratic sieve
// writes a temporary file into the current directory.
Factorization factor_integer(const BigInt& n);

// Cache of the factorisations of q^m - 1 (and of the cyclotomic values
// Phi_d(q) they are assembled from: q^m - 1 = prod over d | m of Phi_d(q)).
//
// Thread safety: const members (find, size) may run concurrently; get() and
// precompute() mutate and need exclusive access. A common pattern is one
// cache built once and shared read-only (shared_ptr<const FactorCache>), plus
// a per-task cache constructed with it as `parent` that grows locally.
// References returned stay valid as long as the cache that holds them.
class FactorCache {
 public:
  FactorCache() = default;
  explicit FactorCache(std::shared_ptr<const FactorCache> parent) : parent_(std::move(parent)) {}

  // The factorisation of q^m - 1 if this cache or its parent has it.
  const Factorization* find(std::uint64_t q, unsigned m) const;
  // The factorisation of q^m - 1, computed and stored when missing.
  const Factorization& get(std::uint64_t q, unsigned m);
  // Fills the cache for m = 1 .. max_m.
  void precompute(std::uint64_t q, unsigned max_m);
  std::size_t size() const noexcept { return qm_.size(); }

 private:
  const Factorization* find_cyclotomic(std::uint64_t q, unsigned d) const;
  const Factorization& cyclotomic(std::uint64_t q, unsigned d);  // Phi_d(q)

  std::shared_ptr<const FactorCache> parent_;
  std::map<std::pair<std::uint64_t, unsigned>, Factorization> qm_;
  std::map<std::pair<std::uint64_t, unsigned>, Factorization> cyclo_;
};

}  // namespace lfsr
