// Internal: the FLINT calls that differ between GF(p) (nmod_poly) and
// GF(p^k) (fq_nmod_poly). Every FLINT object is created and cleared here.
#pragma once

#include <flint/fmpz.h>

#include "lfsr/field.hpp"
#include "lfsr/poly.hpp"

namespace lfsr::detail {

std::vector<FactorPower> flint_factor(const Field& field, const Poly& f);
bool flint_is_irreducible(const Field& field, const Poly& f);

// x^e mod g == 1 tests for one modulus g of degree >= 2, reusing its inverse.
// Owns its FLINT objects; one thread at a time.
class XPowTester {
 public:
  XPowTester(const Field& field, const Poly& g);
  ~XPowTester();
  XPowTester(const XPowTester&) = delete;
  XPowTester& operator=(const XPowTester&) = delete;
  bool x_pow_is_one(const fmpz_t e);

  struct Impl;  // nmod or fq_nmod implementation

 private:
  Impl* impl_;
};

}  // namespace lfsr::detail
