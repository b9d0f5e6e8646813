// lfsr/cycles.hpp: the cycle structure of a register's whole state space, by
// algebra (Elspas 1959), without visiting the states.
#pragma once

#include <cstdint>
#include <vector>

#include "lfsr/bigint.hpp"
#include "lfsr/factor_cache.hpp"
#include "lfsr/poly.hpp"

namespace lfsr {

class Field;

// `count` cycles of length `length`.
struct CycleClass {
  BigInt length;
  BigInt count;
  friend bool operator==(const CycleClass&, const CycleClass&) = default;
};

// The state-space structure of one register. Plain value type.
struct CycleStructure {
  unsigned degree = 0;
  BigInt states;                   // q^d
  Poly characteristic_polynomial;
  BigInt order;                    // lcm of all cycle lengths = ord(f / x^h)
  std::vector<CycleClass> cycles;  // ascending length; the zero state's cycle included
  BigInt cycle_count;
  BigInt periodic_states;          // q^(d-h)
  BigInt transient_states;         // q^d - q^(d-h)
  unsigned max_tail = 0;           // h: the longest path from a state into a cycle
};

// By algebra: factor the characteristic polynomial, take orders, combine the
// per-factor period distributions with lcm convolution. Throws
// std::invalid_argument (naming `coefficients`) for bad coefficients.
CycleStructure cycle_structure(const Field& field, const std::vector<std::uint64_t>& coefficients,
                               FactorCache& cache);
// The same from an already analysed characteristic polynomial.
CycleStructure cycle_structure(const Field& field, const PolynomialInfo& info);

}  // namespace lfsr
