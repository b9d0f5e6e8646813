// Fields, polynomial text, factorisation, orders and primitivity.
#include <gtest/gtest.h>

#include <string>

#include "oracles.hpp"

using namespace lfsr;
using lfsr_test::euler_phi;

namespace {

template <class F>
void expect_invalid(F&& f, const std::string& param) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one naming " << param;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(param), std::string::npos) << e.what();
  }
}

// Period of x modulo f over GF(2) by multiplying by x until 1 (f(0) = 1).
std::uint64_t brute_order_gf2(std::uint64_t f, unsigned n) {
  std::uint64_t x = 1, k = 0;
  do {
    x <<= 1;
    if (x >> n & 1) x ^= f;
    ++k;
  } while (x != 1);
  return k;
}

// Period of the impulse state (0, ..., 0, 1) by stepping: ord(f) when c0 != 0.
std::uint64_t brute_period(const Register& reg) {
  std::vector<std::uint64_t> s(reg.degree(), 0), start;
  s.back() = 1;
  start = s;
  std::uint64_t k = 0;
  do { reg.step(s); ++k; } while (s != start);
  return k;
}

}  // namespace

TEST(Field, RejectsNonPrimePowers) {
  for (std::uint64_t q : {0ull, 1ull, 6ull, 10ull, 12ull, 100ull, 1ull << 63})
    expect_invalid([&] { Field f(q); }, "field");
}

TEST(Field, ConwayModuliAndEncoding) {
  EXPECT_EQ(Field(4).modulus_string(), "x^2 + x + 1");
  EXPECT_EQ(Field(8).modulus_string(), "x^3 + x + 1");
  EXPECT_EQ(Field(9).modulus_string(), "x^2 + 2*x + 2");
  EXPECT_TRUE(Field(9).modulus_is_conway());
  Field f4(4);
  EXPECT_EQ(f4.mul(2, 2), 3u);  // a^2 = a + 1
  EXPECT_EQ(f4.add(2, 3), 1u);
  Field f9(9);  // a^2 = -2a - 2 = a + 1: digits (1, 1) = 4
  EXPECT_EQ(f9.mul(3, 3), 4u);
  EXPECT_EQ(f9.add(5, 7), 0u);  // (2 + a) + (1 + 2a) = 0
}

TEST(Field, LeastIrreducibleWhenNoConway) {
  const std::uint64_t p = 1000003;  // beyond FLINT's Conway table
  Field f(p * p);
  EXPECT_FALSE(f.modulus_is_conway());
  // x^2 + a is irreducible iff -a is a non-residue; the least candidate wins.
  ASSERT_EQ(f.modulus().size(), 3u);
  EXPECT_EQ(f.modulus()[1], 0u);
  EXPECT_TRUE(is_irreducible(Field(p), f.modulus()));
  for (std::uint64_t a = 1; a < f.modulus()[0]; ++a) EXPECT_FALSE(is_irreducible(Field(p), {a, 0, 1}));
}

TEST(Field, AxiomsOnRandomElements) {
  std::mt19937_64 rng(7);
  for (std::uint64_t q : {2ull, 3ull, 4ull, 8ull, 9ull, 16ull, 25ull, 27ull, 49ull, 1ull << 20, 1000003ull * 1000003ull}) {
    Field f(q);
    for (int i = 0; i < 300; ++i) {
      std::uint64_t a = rng() % q, b = rng() % q, c = rng() % q;
      EXPECT_EQ(f.mul(a, f.add(b, c)), f.add(f.mul(a, b), f.mul(a, c))) << q;
      EXPECT_EQ(f.mul(f.mul(a, b), c), f.mul(a, f.mul(b, c))) << q;
      EXPECT_EQ(f.add(a, f.neg(a)), 0u);
      EXPECT_EQ(f.sub(f.add(a, b), b), a);
      if (a) EXPECT_EQ(f.mul(a, f.inv(a)), 1u) << q << " " << a;
    }
  }
}

TEST(Poly, ToString) {
  EXPECT_EQ(poly_to_string({1, 1, 0, 1, 1}), "x^4 + x^3 + x + 1");
  EXPECT_EQ(poly_to_string({1, 2, 1}), "x^2 + 2*x + 1");
  EXPECT_EQ(poly_to_string({0, 1}), "x");
  EXPECT_EQ(poly_to_string({5}), "5");
  EXPECT_EQ(poly_to_string({}), "0");
  EXPECT_EQ(poly_to_string({0, 0, 3}), "3*x^2");
}

TEST(Poly, CharacteristicPolynomialConventionAndBadInput) {
  Field f2(2), f5(5);
  EXPECT_EQ(poly_to_string(characteristic_polynomial(f2, {1, 1, 0, 1})), "x^4 + x^3 + x + 1");
  EXPECT_EQ(poly_to_string(characteristic_polynomial(f5, {1, 2})), "x^2 + 3*x + 4");
  expect_invalid([&] { characteristic_polynomial(f2, {}); }, "coefficients");
  expect_invalid([&] { characteristic_polynomial(f2, {1, 2}); }, "coefficients");
  expect_invalid([&] { characteristic_polynomial(Field(4), {4}); }, "coefficients");
}

TEST(Poly, OrderSixCaseWithRepeatedFactor) {
  // lfsr-seq reports 3 here because it ignores multiplicities.
  Field f(2);
  FactorCache cache;
  auto info = analyse_polynomial(f, characteristic_polynomial(f, {1, 1, 0, 1}), cache);
  EXPECT_EQ(info.order.str(), "6");
  ASSERT_EQ(info.factors.size(), 2u);
  EXPECT_EQ(poly_to_string(info.factors[0].factor), "x + 1");
  EXPECT_EQ(info.factors[0].multiplicity, 2u);
  EXPECT_EQ(poly_to_string(info.factors[1].factor), "x^2 + x + 1");
  EXPECT_EQ(info.factors[1].order->str(), "3");
  EXPECT_FALSE(info.irreducible);
  EXPECT_FALSE(info.primitive);
}

TEST(Poly, OeisA046932OrderOfTrinomials) {
  // a(n) = period of x^n + x + 1 over GF(2), published terms n = 2..35.
  const std::uint64_t a[] = {0, 1, 3, 7, 15, 21, 63, 127, 63, 73, 889, 1533, 3255, 7905, 11811, 32767, 255,
                             273, 253921, 413385, 761763, 5461, 4194303, 2088705, 2097151, 10961685,
                             298935, 125829105, 17895697, 402653181, 10845877, 2097151, 1023, 1057,
                             255652815, 3681400539ull};
  Field f(2);
  FactorCache cache;
  for (unsigned n = 2; n <= 35; ++n) {
    std::vector<std::uint64_t> c(n, 0);
    c[0] = c[1] = 1;
    auto info = analyse_polynomial(f, characteristic_polynomial(f, c), cache);
    EXPECT_EQ(info.order, BigInt(a[n])) << "n = " << n;
  }
}

TEST(Poly, OeisA011260PrimitiveCountsByExhaustiveSearch) {
  const unsigned published[] = {0, 1, 1, 2, 2, 6, 6, 18, 16, 48, 60, 176, 144, 630, 756, 1800, 2048};
  Field f(2);
  FactorCache cache;
  for (unsigned n = 1; n <= 16; ++n) {
    unsigned count = 0;
    for (std::uint64_t low = 0; low < (1ull << n); ++low) {
      Poly p(n + 1);
      for (unsigned i = 0; i < n; ++i) p[i] = low >> i & 1;
      p[n] = 1;
      if (p[0] == 0) continue;
      if (analyse_polynomial(f, p, cache).primitive) ++count;
    }
    EXPECT_EQ(count, euler_phi((1ull << n) - 1) / n) << "n = " << n;
    EXPECT_EQ(count, published[n]) << "n = " << n;
  }
}

TEST(Poly, OrdersAgainstBruteForceGf2) {
  Field f(2);
  FactorCache cache;
  for (unsigned n = 1; n <= 10; ++n)
    for (std::uint64_t low = 1; low < (1ull << n); low += 2) {
      Poly p(n + 1);
      for (unsigned i = 0; i < n; ++i) p[i] = low >> i & 1;
      p[n] = 1;
      auto info = analyse_polynomial(f, p, cache);
      EXPECT_EQ(info.order, BigInt(brute_order_gf2(low | (1ull << n), n))) << poly_to_string(p);
    }
}

TEST(Poly, OrdersAgainstBruteForceOtherFields) {
  std::mt19937_64 rng(11);
  FactorCache cache;
  for (std::uint64_t q : {3ull, 4ull, 5ull, 7ull, 8ull, 9ull, 16ull}) {
    Field f(q);
    for (int i = 0; i < 60; ++i) {
      const unsigned d = 1 + rng() % 5;
      auto c = lfsr_test::random_coefficients(rng, q, d);
      if (c[0] == 0) c[0] = 1;
      Register reg(f, c);
      auto info = analyse_polynomial(f, reg.characteristic_polynomial(), cache);
      EXPECT_EQ(info.order, BigInt(brute_period(reg))) << "q=" << q << " " << poly_to_string(info.polynomial);
      // Primitive iff irreducible with order q^d - 1, checked by brute force.
      const bool prim = is_irreducible(f, info.polynomial) && brute_period(reg) + 1 == BigInt::pow(q, d).to_uint64();
      EXPECT_EQ(info.primitive, prim);
    }
  }
}

TEST(FactorCache, CyclotomicSplitAndLayering) {
  auto shared = std::make_shared<FactorCache>();
  shared->precompute(2, 64);
  EXPECT_EQ(shared->size(), 64u);
  for (unsigned m = 1; m <= 64; ++m) {
    BigInt prod(1);
    for (const auto& [prime, e] : *shared->find(2, m))
      for (unsigned i = 0; i < e; ++i) prod *= prime;
    EXPECT_EQ(prod, BigInt::pow(2, m) - BigInt(1)) << m;
  }
  // ECM + BPSW path: every factor proven prime, products exact, up to m = 128.
  shared->precompute(2, 128);
  for (unsigned m = 65; m <= 128; ++m) {
    BigInt prod(1);
    for (const auto& [prime, e] : *shared->find(2, m)) {
      EXPECT_TRUE(fmpz_is_prime(prime.get())) << prime.str();
      for (unsigned i = 0; i < e; ++i) prod *= prime;
    }
    EXPECT_EQ(prod, BigInt::pow(2, m) - BigInt(1)) << m;
  }
  EXPECT_EQ(factor_integer(BigInt(std::string_view("1000000016000000063"))).size(), 2u);  // 1000000007 * 1000000009
  FactorCache local{std::shared_ptr<const FactorCache>(shared)};
  EXPECT_EQ(local.find(2, 10), shared->find(2, 10));  // served by the parent
  const auto& f = local.get(3, 12);
  EXPECT_EQ(shared->find(3, 12), nullptr);  // the parent is never mutated
  BigInt prod(1);
  for (const auto& [prime, e] : f)
    for (unsigned i = 0; i < e; ++i) prod *= prime;
  EXPECT_EQ(prod, BigInt::pow(3, 12) - BigInt(1));
}
