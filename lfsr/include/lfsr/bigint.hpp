// lfsr/bigint.hpp: a small arbitrary-precision integer for counts and periods.
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>
#include <optional>
#include <string>
#include <string_view>

#include <flint/fmpz.h>

namespace lfsr {

// Non-negative or signed big integer backed by a FLINT fmpz. Plain value type
// (copyable, movable); distinct objects may be used from different threads.
class BigInt {
 public:
  BigInt() noexcept { fmpz_init(v_); }
  template <std::integral T>
  BigInt(T x) {  // NOLINT: implicit from any integer, by design
    if constexpr (std::is_signed_v<T>) fmpz_init_set_si(v_, static_cast<slong>(x));
    else fmpz_init_set_ui(v_, static_cast<ulong>(x));
  }
  static BigInt from_fmpz(const fmpz_t x) { BigInt r; fmpz_set(r.v_, x); return r; }
  explicit BigInt(std::string_view decimal);  // throws std::invalid_argument
  BigInt(const BigInt& o) { fmpz_init_set(v_, o.v_); }
  BigInt(BigInt&& o) noexcept { fmpz_init(v_); fmpz_swap(v_, o.v_); }
  BigInt& operator=(const BigInt& o) { fmpz_set(v_, o.v_); return *this; }
  BigInt& operator=(BigInt&& o) noexcept { fmpz_swap(v_, o.v_); return *this; }
  ~BigInt() { fmpz_clear(v_); }

  static BigInt pow(std::uint64_t base, std::uint64_t exp);
  static BigInt lcm(const BigInt& a, const BigInt& b);

  fmpz* get() noexcept { return v_; }
  const fmpz* get() const noexcept { return v_; }

  std::string str() const;                      // decimal
  std::optional<std::int64_t> to_int64() const; // empty when out of range
  std::optional<std::uint64_t> to_uint64() const;
  bool is_zero() const noexcept { return fmpz_is_zero(v_); }

  BigInt& operator+=(const BigInt& o) { fmpz_add(v_, v_, o.v_); return *this; }
  BigInt& operator-=(const BigInt& o) { fmpz_sub(v_, v_, o.v_); return *this; }
  BigInt& operator*=(const BigInt& o) { fmpz_mul(v_, v_, o.v_); return *this; }
  friend BigInt operator+(BigInt a, const BigInt& b) { return a += b; }
  friend BigInt operator-(BigInt a, const BigInt& b) { return a -= b; }
  friend BigInt operator*(BigInt a, const BigInt& b) { return a *= b; }
  // Exact division (the caller knows b divides a); throws std::domain_error otherwise.
  friend BigInt exact_div(const BigInt& a, const BigInt& b);

  friend bool operator==(const BigInt& a, const BigInt& b) noexcept { return fmpz_equal(a.v_, b.v_); }
  friend bool operator<(const BigInt& a, const BigInt& b) noexcept { return fmpz_cmp(a.v_, b.v_) < 0; }
  friend bool operator>(const BigInt& a, const BigInt& b) noexcept { return b < a; }
  friend bool operator<=(const BigInt& a, const BigInt& b) noexcept { return !(b < a); }
  friend bool operator>=(const BigInt& a, const BigInt& b) noexcept { return !(a < b); }

 private:
  fmpz_t v_;
};

}  // namespace lfsr
