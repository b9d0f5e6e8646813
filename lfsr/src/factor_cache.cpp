#include "lfsr/factor_cache.hpp"

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include <flint/fmpz_factor.h>
#include <flint/fmpz_poly.h>
#include <flint/ulong_extras.h>

namespace lfsr {

namespace {

// Splits n (no prime factors below kTrialBound) into primes, adding `mult`
// to each exponent. ECM first: fmpz_factor would go to the quadratic sieve,
// which writes a temporary file into the current directory and reseeds rand()
// -- unsafe when several workers share a directory. It stays the last resort.
constexpr ulong kTrialBound = 10000;

void split(const BigInt& n, unsigned mult, std::map<BigInt, unsigned>& out, flint_rand_t state) {
  if (fmpz_is_one(n.get())) return;
  if (fmpz_abs_fits_ui(n.get())) {
    n_factor_t f;
    n_factor_init(&f);
    n_factor(&f, fmpz_get_ui(n.get()), 1);
    for (int i = 0; i < f.num; ++i) out[BigInt(f.p[i])] += mult * f.exp[i];
    return;
  }
  // BPSW: no composite passing it is known.
  if (fmpz_is_probabprime(n.get())) {
    out[n] += mult;
    return;
  }
  BigInt root;
  if (int k = fmpz_is_perfect_power(root.get(), n.get()); k > 1) {
    split(root, mult * static_cast<unsigned>(k), out, state);
    return;
  }
  BigInt f;
  for (ulong b1 = 2000; b1 <= 3000000; b1 *= 3) {
    if (fmpz_factor_ecm(f.get(), 40, b1, 50 * b1, state, n.get()) && !fmpz_is_one(f.get()) && !(f == n)) {
      split(f, mult, out, state);
      split(exact_div(n, f), mult, out, state);
      return;
    }
  }
  fmpz_factor_t fac;  // last resort (see above)
  fmpz_factor_init(fac);
  fmpz_factor(fac, n.get());
  for (slong i = 0; i < fac->num; ++i) out[BigInt::from_fmpz(fac->p + i)] += mult * static_cast<unsigned>(fac->exp[i]);
  fmpz_factor_clear(fac);
}

// Approximate heap bytes of a stored entry (map node, vector, big primes
// limbs): what a learn budget is charged.
std::size_t footprint(const Factorization& f) {
  std::size_t bytes = 96 + f.capacity() * sizeof(f[0]);
  for (const auto& [prime, e] : f) bytes += fmpz_size(prime.get()) * sizeof(mp_limb_t);
  return bytes;
}

}  // namespace

Factorization factor_integer(const BigInt& n) {
  if (fmpz_sgn(n.get()) <= 0) throw std::invalid_argument("factor_integer: n must be positive");
  std::map<BigInt, unsigned> primes;
  BigInt rest = n;
  for (ulong p = 2; p < kTrialBound; p = n_nextprime(p, 1)) {
    while (fmpz_divisible_si(rest.get(), static_cast<slong>(p))) {
      fmpz_divexact_ui(rest.get(), rest.get(), p);
      ++primes[BigInt(p)];
    }
  }
  flint_rand_t state;  // private generator: the caller's rand() is untouched
  flint_randinit(state);
  split(rest, 1, primes, state);
  flint_randclear(state);
  return Factorization(primes.begin(), primes.end());
}

FactorCache FactorCache::teaching(std::shared_ptr<FactorCache> parent) {
  if (!parent) throw std::invalid_argument("FactorCache::teaching: parent must not be null");
  return FactorCache(std::move(parent), true);
}

FactorCache::FactorCache(std::shared_ptr<FactorCache> parent, bool teach)
    : parent_(parent), teach_(teach ? parent.get() : nullptr) {}

const Factorization* FactorCache::find_in(Table FactorCache::*table, const Key& key) const {
  {
    std::shared_lock lock(mutex_);
    const Table& t = this->*table;
    if (auto it = t.find(key); it != t.end()) return &it->second;
  }
  return parent_ ? parent_->find_in(table, key) : nullptr;
}

const Factorization* FactorCache::find(std::uint64_t q, unsigned m) const { return find_in(&FactorCache::qm_, {q, m}); }

std::size_t FactorCache::size() const {
  std::shared_lock lock(mutex_);
  return qm_.size();
}

std::size_t FactorCache::learned_bytes() const {
  std::shared_lock lock(mutex_);
  return learned_bytes_;
}

const Factorization* FactorCache::learn(Table FactorCache::*table, const Key& key, Factorization& value) {
  std::unique_lock lock(mutex_);
  Table& t = this->*table;
  if (auto it = t.find(key); it != t.end()) return &it->second;
  const std::size_t bytes = footprint(value);
  if (learn_budget_ - learned_bytes_ < bytes) return nullptr;  // learned_bytes_ <= learn_budget_ always
  learned_bytes_ += bytes;
  return &t.emplace(key, std::move(value)).first->second;
}

const Factorization& FactorCache::store(Table FactorCache::*table, const Key& key, Factorization value) {
  if (teach_) {
    if (const Factorization* f = teach_->learn(table, key, value)) return *f;
  }  // refused (budget spent): `value` is untouched and stays in this layer
  std::unique_lock lock(mutex_);
  return (this->*table).emplace(key, std::move(value)).first->second;
}

const Factorization& FactorCache::cyclotomic(std::uint64_t q, unsigned d) {
  if (const Factorization* f = find_in(&FactorCache::cyclo_, {q, d})) return *f;
  fmpz_poly_t phi;
  fmpz_poly_init(phi);
  fmpz_poly_cyclotomic(phi, d);
  BigInt value, x(q);
  fmpz_poly_evaluate_fmpz(value.get(), phi, x.get());
  fmpz_poly_clear(phi);
  Factorization f = factor_integer(value);  // unlocked: may take long
  factored_.fetch_add(1, std::memory_order_relaxed);
  return store(&FactorCache::cyclo_, {q, d}, std::move(f));
}

const Factorization& FactorCache::get(std::uint64_t q, unsigned m) {
  if (m == 0) throw std::invalid_argument("FactorCache: m must be >= 1");
  if (const Factorization* f = find(q, m)) return *f;
  // q^m - 1 = prod_{d | m} Phi_d(q): factoring the pieces is far cheaper than
  // factoring the product, and the pieces are shared between different m.
  std::map<BigInt, unsigned> merged;
  for (unsigned d = 1; d <= m; ++d) {
    if (m % d != 0) continue;
    for (const auto& [prime, e] : cyclotomic(q, d)) merged[prime] += e;
  }
  return store(&FactorCache::qm_, {q, m}, Factorization(merged.begin(), merged.end()));
}

void FactorCache::precompute(std::uint64_t q, unsigned max_m) {
  for (unsigned m = 1; m <= max_m; ++m) get(q, m);
}

}  // namespace lfsr
