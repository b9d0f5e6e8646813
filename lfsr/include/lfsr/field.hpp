// lfsr/field.hpp: GF(q), q = p^k, with elements encoded as integers 0 <= v < q.
//
// For k > 1 the base-p digits of v, lowest first, are the coefficients of the
// element as a polynomial in the generator (a root of the defining polynomial).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <flint/fq_nmod.h>
#include <flint/nmod_vec.h>

namespace lfsr {

// A finite field. Immutable after construction: all const members may be called
// from several threads at once; copies share the FLINT context (read-only).
class Field {
 public:
  // Throws std::invalid_argument naming `field` when q is not a prime power
  // (or too large: q must be below 2^63).
  explicit Field(std::uint64_t q);

  std::uint64_t q() const noexcept { return q_; }
  std::uint64_t p() const noexcept { return p_; }
  unsigned k() const noexcept { return k_; }
  bool is_prime() const noexcept { return k_ == 1; }

  // The defining polynomial over GF(p), monic, coefficients lowest first
  // (x for a prime field); Conway where FLINT has one, else the least monic
  // irreducible (coefficient vector read from the top, as a base-p number).
  const std::vector<std::uint64_t>& modulus() const noexcept { return modulus_; }
  bool modulus_is_conway() const noexcept { return conway_; }
  std::string modulus_string() const;

  bool contains(std::uint64_t v) const noexcept { return v < q_; }
  std::uint64_t add(std::uint64_t a, std::uint64_t b) const noexcept;
  std::uint64_t sub(std::uint64_t a, std::uint64_t b) const noexcept;
  std::uint64_t neg(std::uint64_t a) const noexcept;
  std::uint64_t mul(std::uint64_t a, std::uint64_t b) const;
  std::uint64_t inv(std::uint64_t a) const;  // throws std::domain_error for 0

  // FLINT views. nmod() is the prime field; fq_ctx() is valid only when k > 1.
  const nmod_t& nmod() const noexcept { return mod_; }
  const fq_nmod_ctx_struct* fq_ctx() const noexcept;
  void to_fq(fq_nmod_t out, std::uint64_t v) const;  // k > 1
  std::uint64_t from_fq(const fq_nmod_t x) const;    // k > 1

 private:
  struct Impl;
  std::uint64_t q_ = 0, p_ = 0;
  unsigned k_ = 0;
  bool conway_ = false;
  nmod_t mod_{};
  std::vector<std::uint64_t> modulus_;
  std::shared_ptr<const Impl> impl_;  // FLINT context and log tables (k > 1)
};

}  // namespace lfsr
