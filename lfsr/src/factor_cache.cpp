#include "lfsr/factor_cache.hpp"

#include <algorithm>
#include <stdexcept>

#include <flint/fmpz_factor.h>
#include <flint/fmpz_poly.h>

namespace lfsr {

Factorization factor_integer(const BigInt& n) {
  if (fmpz_sgn(n.get()) <= 0) throw std::invalid_argument("factor_integer: n must be positive");
  fmpz_factor_t f;
  fmpz_factor_init(f);
  fmpz_factor(f, n.get());
  Factorization out;
  out.reserve(f->num);
  for (slong i = 0; i < f->num; ++i)
    out.emplace_back(BigInt::from_fmpz(f->p + i), static_cast<unsigned>(f->exp[i]));
  fmpz_factor_clear(f);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
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
