// lfsr/sequence.hpp: one register: stepping, output, and the period and
// pre-period of one state without walking its cycle.
#pragma once

#include <cstdint>
#include <vector>

#include "lfsr/bigint.hpp"
#include "lfsr/factor_cache.hpp"
#include "lfsr/field.hpp"
#include "lfsr/poly.hpp"

namespace lfsr {

// A register s(n+d) = c0 s(n) + ... + c(d-1) s(n+d-1) over a field; the state
// is (s(n), ..., s(n+d-1)). Immutable: const members are safe from several
// threads. Holds a copy of the Field (which shares its FLINT context).
class Register {
 public:
  // Throws std::invalid_argument naming `coefficients`.
  Register(Field field, std::vector<std::uint64_t> coefficients);

  const Field& field() const noexcept { return field_; }
  const std::vector<std::uint64_t>& coefficients() const noexcept { return c_; }
  unsigned degree() const noexcept { return static_cast<unsigned>(c_.size()); }
  Poly characteristic_polynomial() const;

  // Throws std::invalid_argument naming `state` for a wrongly sized list or an
  // element outside the field.
  void check_state(const std::vector<std::uint64_t>& state) const;
  std::uint64_t feedback(const std::vector<std::uint64_t>& state) const;
  void step(std::vector<std::uint64_t>& state) const;  // shift left, append feedback
  // s(0), ..., s(length-1) from the given initial state.
  std::vector<std::uint64_t> output(const std::vector<std::uint64_t>& state, std::size_t length) const;

 private:
  Field field_;
  std::vector<std::uint64_t> c_;
};

// Period and pre-period of the sequence from one state: Berlekamp–Massey on 2d
// outputs gives its minimal polynomial x^h g (g(0) != 0); pre-period h,
// period ord(g) (1 for the zero state). Plain value type.
struct StatePeriod {
  BigInt period;
  std::uint64_t preperiod = 0;
  Poly minimal_polynomial;
};
StatePeriod state_period(const Register& reg, const std::vector<std::uint64_t>& state, FactorCache& cache);

}  // namespace lfsr
