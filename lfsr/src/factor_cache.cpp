#include "lfsr/factor_cache.hpp"

#include <algorithm>
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

const Factorization* FactorCache::find(std::uint64_t q, unsigned m) const {
  if (auto it = qm_.find({q, m}); it != qm_.end()) return &it->second;
  return parent_ ? parent_->find(q, m) : nullptr;
}

const Factorization* FactorCache::find_cyclotomic(std::uint64_t q, unsigned d) const {
  if (auto it = cyclo_.find({q, d}); it != cyclo_.end()) return &it->second;
  return parent_ ? parent_->find_cyclotomic(q, d) : nullptr;
}

const Factorization& FactorCache::cyclotomic(std::uint64_t q, unsigned d) {
  if (const Factorization* f = find_cyclotomic(q, d)) return *f;
  fmpz_poly_t phi;
  fmpz_poly_init(phi);
  fmpz_poly_cyclotomic(phi, d);
  BigInt value, x(q);
  fmpz_poly_evaluate_fmpz(value.get(), phi, x.get());
  fmpz_poly_clear(phi);
  return cyclo_.emplace(std::pair{q, d}, factor_integer(value)).first->second;
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
  Factorization out(merged.begin(), merged.end());
  return qm_.emplace(std::pair{q, m}, std::move(out)).first->second;
}

void FactorCache::precompute(std::uint64_t q, unsigned max_m) {
  for (unsigned m = 1; m <= max_m; ++m) get(q, m);
}

}  // namespace lfsr
