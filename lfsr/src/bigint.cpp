#include "lfsr/bigint.hpp"

#include <memory>
#include <stdexcept>

namespace lfsr {

BigInt::BigInt(std::string_view decimal) {
  fmpz_init(v_);
  std::string s(decimal);
  if (s.empty() || s.find_first_not_of("-0123456789") != std::string::npos ||
      fmpz_set_str(v_, s.c_str(), 10) != 0)
    throw std::invalid_argument("BigInt: not a decimal integer: '" + s + "'");
}

BigInt BigInt::pow(std::uint64_t base, std::uint64_t exp) {
  BigInt r;
  fmpz_set_ui(r.v_, base);
  fmpz_pow_ui(r.v_, r.v_, exp);
  return r;
}

BigInt BigInt::lcm(const BigInt& a, const BigInt& b) {
  BigInt r;
  fmpz_lcm(r.v_, a.v_, b.v_);
  return r;
}

BigInt exact_div(const BigInt& a, const BigInt& b) {
  BigInt q, r;
  if (b.is_zero()) throw std::domain_error("BigInt: division by zero");
  fmpz_fdiv_qr(q.v_, r.v_, a.v_, b.v_);
  if (!r.is_zero()) throw std::domain_error("BigInt: inexact division");
  return q;
}

std::string BigInt::str() const {
  std::unique_ptr<char, void (*)(void*)> s(fmpz_get_str(nullptr, 10, v_), flint_free);
  return std::string(s.get());
}

std::optional<std::int64_t> BigInt::to_int64() const {
  if (!fmpz_fits_si(v_)) return std::nullopt;
  return static_cast<std::int64_t>(fmpz_get_si(v_));
}

std::optional<std::uint64_t> BigInt::to_uint64() const {
  if (fmpz_sgn(v_) < 0 || !fmpz_abs_fits_ui(v_)) return std::nullopt;
  return static_cast<std::uint64_t>(fmpz_get_ui(v_));
}

}  // namespace lfsr
