// lfsr/factor_cache.hpp: factorisations of q^m - 1, split by cyclotomic factors.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <shared_mutex>
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
// Phi_d(q) they are assembled from: q^m - 1 = prod over d | m of Phi_d(q)),
// filled on demand.
//
// Thread safety: every member may run concurrently (an internal shared_mutex;
// factoring itself runs unlocked, so two threads missing the same entry may
// both compute it and the first to store wins). Entries are never removed, so
// references and pointers returned stay valid as long as the cache lives.
//
// Layers: a cache may sit on a parent, found after its own entries.
//  - FactorCache(shared_ptr<const FactorCache>): the parent is read-only; the
//    layer keeps what it computes (a per-task scratch layer).
//  - FactorCache::teaching(shared_ptr<FactorCache>): what the layer computes is
//    stored in the parent, so later layers on the same parent find it (facts a
//    worker learns, kept across its tasks); only once the parent's learn budget
//    is spent does the layer keep results itself.
class FactorCache {
 public:
  static constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

  // A root cache. `learn_budget_bytes` bounds what teaching layers may store
  // here (approximate heap bytes); this cache's own get() always stores.
  explicit FactorCache(std::size_t learn_budget_bytes = kUnlimited) : learn_budget_(learn_budget_bytes) {}
  // A layer over a read-only parent.
  explicit FactorCache(std::shared_ptr<const FactorCache> parent) : parent_(std::move(parent)) {}
  // A layer whose results go into `parent` while its learn budget lasts.
  static FactorCache teaching(std::shared_ptr<FactorCache> parent);

  FactorCache(const FactorCache&) = delete;
  FactorCache& operator=(const FactorCache&) = delete;

  // The factorisation of q^m - 1 if this cache or its parent has it.
  const Factorization* find(std::uint64_t q, unsigned m) const;
  // The factorisation of q^m - 1, computed and stored when missing.
  const Factorization& get(std::uint64_t q, unsigned m);
  // Fills the cache for m = 1 .. max_m.
  void precompute(std::uint64_t q, unsigned max_m);

  // Entries of q^m - 1 held by this cache itself (not its parent).
  std::size_t size() const;
  // Integers (values Phi_d(q)) this cache has factored itself: a lookup that
  // is served from a cache leaves it unchanged.
  std::size_t factored_count() const noexcept { return factored_.load(std::memory_order_relaxed); }
  // Approximate heap bytes that teaching layers have stored here.
  std::size_t learned_bytes() const;

 private:
  using Key = std::pair<std::uint64_t, unsigned>;
  using Table = std::map<Key, Factorization>;  // std::map: nodes never move

  FactorCache(std::shared_ptr<FactorCache> parent, bool teach);

  const Factorization* find_in(Table FactorCache::*table, const Key& key) const;
  // Stores `value` under `key` (in the teaching parent while it has room,
  // else here); an entry already present wins and is returned.
  const Factorization& store(Table FactorCache::*table, const Key& key, Factorization value);
  // The parent's side of store(): moves from `value` when it keeps it;
  // nullptr (value untouched) when the learn budget is spent.
  const Factorization* learn(Table FactorCache::*table, const Key& key, Factorization& value);
  const Factorization& cyclotomic(std::uint64_t q, unsigned d);  // Phi_d(q)

  std::shared_ptr<const FactorCache> parent_;
  FactorCache* teach_ = nullptr;  // == parent_.get() for a teaching layer
  const std::size_t learn_budget_ = kUnlimited;

  mutable std::shared_mutex mutex_;  // guards qm_, cyclo_, learned_bytes_
  Table qm_;
  Table cyclo_;
  std::size_t learned_bytes_ = 0;
  std::atomic<std::size_t> factored_{0};
};

}  // namespace lfsr
