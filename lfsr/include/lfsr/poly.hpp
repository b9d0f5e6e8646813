// lfsr/poly.hpp: polynomials over GF(q): characteristic polynomial, factors,
// orders, primitivity, and their text form.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lfsr/bigint.hpp"
#include "lfsr/factor_cache.hpp"

namespace lfsr {

class Field;

// A polynomial over GF(q): coefficients (element encoding) lowest degree first,
// no trailing zeros (the zero polynomial is empty). Plain value type.
using Poly = std::vector<std::uint64_t>;

// Descending powers of x, e.g. "x^4 + x^3 + x + 1", "x^2 + 2*x + 1", "0".
std::string poly_to_string(const Poly& f);

// Checks register coefficients [c0, ..., c(d-1)] against the field; throws
// std::invalid_argument naming `coefficients` when empty or out of range.
void check_coefficients(const Field& field, const std::vector<std::uint64_t>& coefficients);

// x^d - c(d-1) x^(d-1) - ... - c0 (the register convention, docs/lfsr.md).
Poly characteristic_polynomial(const Field& field, const std::vector<std::uint64_t>& coefficients);

// One irreducible factor with its multiplicity. Plain value type.
struct FactorPower {
  Poly factor;  // monic irreducible
  unsigned multiplicity = 1;
};

// Monic irreducible factorisation of a nonzero polynomial (the leading
// coefficient is dropped), ordered by degree, then by coefficients from the top.
std::vector<FactorPower> factor_polynomial(const Field& field, const Poly& f);
bool is_irreducible(const Field& field, const Poly& f);

// Multiplicative order of x modulo an irreducible g != x (a divisor of q^m - 1).
BigInt order_of_irreducible(const Field& field, const Poly& g, FactorCache& cache);
// ord(g^e) = ord(g) * p^t, t least with p^t >= e (p the characteristic).
BigInt order_of_power(const Field& field, const BigInt& order_of_g, unsigned e);

// Everything lfsr.polynomial reports about one polynomial. Plain value types.
struct FactorInfo {
  Poly factor;
  unsigned multiplicity = 1;
  std::optional<BigInt> order;  // empty for the factor x (x is not invertible mod x)
};
struct PolynomialInfo {
  Poly polynomial;
  std::vector<FactorInfo> factors;
  unsigned x_power = 0;  // h in f = x^h g, g(0) != 0
  BigInt order;          // ord(g): lcm over the coprime parts g_i^e_i (1 when g = 1)
  bool irreducible = false;
  bool primitive = false;
};
// f must be monic of degree >= 1.
PolynomialInfo analyse_polynomial(const Field& field, const Poly& f, FactorCache& cache);

}  // namespace lfsr
