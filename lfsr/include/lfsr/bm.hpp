// lfsr/bm.hpp: Berlekamp–Massey over GF(p) and GF(p^k): the shortest register
// that generates a given sequence.
#pragma once

#include <cstdint>
#include <vector>

#include "lfsr/poly.hpp"

namespace lfsr {

class Field;

// Plain value type.
struct Synthesis {
  unsigned linear_complexity = 0;                // L
  std::vector<std::uint64_t> coefficients;       // [c0, ..., c(L-1)], the register convention
  Poly connection_polynomial;                    // C(x) = 1 - c(L-1) x - ... - c0 x^L
  Poly characteristic_polynomial;                // x^L C(1/x)
  bool unique = false;                           // 2L <= n: the register is the only one of length L
  std::vector<unsigned> profile;                 // L(1), ..., L(n) when asked for
};

// Textbook Massey (one pass). GF(2) uses a bit-packed variant. Throws
// std::invalid_argument naming `sequence` when it is empty or has an element
// outside the field.
Synthesis berlekamp_massey(const Field& field, const std::vector<std::uint64_t>& sequence,
                           bool with_profile = false);

}  // namespace lfsr
