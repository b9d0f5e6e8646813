#include "lfsr/poly.hpp"

#include <algorithm>
#include <stdexcept>

#include "backend.hpp"
#include "lfsr/field.hpp"

namespace lfsr {

std::string poly_to_string(const Poly& f) {
  std::string out;
  for (std::size_t i = f.size(); i-- > 0;) {
    if (f[i] == 0) continue;
    if (!out.empty()) out += " + ";
    const bool show_coeff = f[i] != 1 || i == 0;
    if (show_coeff) out += std::to_string(f[i]);
    if (i == 0) continue;
    if (show_coeff) out += '*';
    out += 'x';
    if (i > 1) out += '^' + std::to_string(i);
  }
  return out.empty() ? "0" : out;
}

void check_coefficients(const Field& field, const std::vector<std::uint64_t>& c) {
  if (c.empty()) throw std::invalid_argument("coefficients: the list must not be empty");
  for (std::size_t i = 0; i < c.size(); ++i)
    if (!field.contains(c[i]))
      throw std::invalid_argument("coefficients: c" + std::to_string(i) + " = " + std::to_string(c[i]) +
                                  " is out of range for GF(" + std::to_string(field.q()) +
                                  "): need 0 <= c < " + std::to_string(field.q()));
}

Poly characteristic_polynomial(const Field& field, const std::vector<std::uint64_t>& c) {
  check_coefficients(field, c);
  Poly f(c.size() + 1);
  for (std::size_t i = 0; i < c.size(); ++i) f[i] = field.neg(c[i]);
  f.back() = 1;
  return f;
}

std::vector<FactorPower> factor_polynomial(const Field& field, const Poly& f) {
  if (f.empty()) throw std::invalid_argument("polynomial: cannot factor the zero polynomial");
  auto out = detail::flint_factor(field, f);
  std::sort(out.begin(), out.end(), [](const FactorPower& a, const FactorPower& b) {
    if (a.factor.size() != b.factor.size()) return a.factor.size() < b.factor.size();
    return std::lexicographical_compare(a.factor.rbegin(), a.factor.rend(), b.factor.rbegin(),
                                        b.factor.rend());
  });
  return out;
}

bool is_irreducible(const Field& field, const Poly& f) {
  if (f.size() < 2) return false;
  return detail::flint_is_irreducible(field, f);
}

namespace {

// The least divisor of N = prod r^a with is_one(x^divisor): strip each prime
// fully, then add back the fewest powers that make the test pass.
template <class IsOne>
BigInt order_from_factorization(BigInt order, const Factorization& fac, IsOne&& is_one) {
  for (const auto& [r, a] : fac) {
    BigInt rpow;
    fmpz_pow_ui(rpow.get(), r.get(), a);
    BigInt cur = exact_div(order, rpow);
    unsigned t = 0;
    while (t < a && !is_one(cur)) {
      cur *= r;
      ++t;
    }
    order = std::move(cur);
  }
  return order;
}

std::uint64_t field_pow(const Field& field, std::uint64_t a, std::uint64_t e) {
  std::uint64_t r = 1;
  for (; e; e >>= 1, a = field.mul(a, a))
    if (e & 1) r = field.mul(r, a);
  return r;
}

}  // namespace

BigInt order_of_irreducible(const Field& field, const Poly& g, FactorCache& cache) {
  if (g.size() < 2 || g.back() != 1) throw std::invalid_argument("order: g must be monic of degree >= 1");
  if (g[0] == 0) throw std::invalid_argument("order: g must not be divisible by x");
  const auto m = static_cast<unsigned>(g.size() - 1);
  const Factorization& fac = cache.get(field.q(), m);
  BigInt n = BigInt::pow(field.q(), m) - BigInt(1);
  if (m == 1) {  // x = -g0 mod g: the multiplicative order of a field element
    const std::uint64_t a = field.neg(g[0]);
    return order_from_factorization(n, fac, [&](const BigInt& e) {
      return field_pow(field, a, *e.to_uint64()) == 1;
    });
  }
  detail::XPowTester tester(field, g);
  return order_from_factorization(n, fac, [&](const BigInt& e) { return tester.x_pow_is_one(e.get()); });
}

BigInt order_of_power(const Field& field, const BigInt& order_of_g, unsigned e) {
  BigInt pt(1), p(field.p());
  while (pt < BigInt(e)) pt *= p;
  return order_of_g * pt;
}

PolynomialInfo analyse_polynomial(const Field& field, const Poly& f, FactorCache& cache) {
  if (f.size() < 2 || f.back() != 1)
    throw std::invalid_argument("polynomial: must be monic of degree >= 1");
  PolynomialInfo info;
  info.polynomial = f;
  info.order = BigInt(1);
  for (auto& [g, e] : factor_polynomial(field, f)) {
    FactorInfo fi{g, e, std::nullopt};
    if (g == Poly{0, 1}) {
      info.x_power = e;
    } else {
      BigInt og = order_of_irreducible(field, g, cache);
      info.order = BigInt::lcm(info.order, order_of_power(field, og, e));
      fi.order = std::move(og);
    }
    info.factors.push_back(std::move(fi));
  }
  const auto d = static_cast<unsigned>(f.size() - 1);
  info.irreducible = info.factors.size() == 1 && info.factors[0].multiplicity == 1;
  info.primitive = info.irreducible && f[0] != 0 &&
                   info.order == BigInt::pow(field.q(), d) - BigInt(1);
  return info;
}

}  // namespace lfsr
