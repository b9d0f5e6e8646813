// Berlekamp–Massey against a linear-algebra oracle; registers, output, and the
// period/pre-period of one state against walking.
#include <gtest/gtest.h>

#include "oracles.hpp"

using namespace lfsr;

namespace {

// Is there a register of length L generating s(0..n-1)? Gaussian elimination on
// sum_i c_i s(j+i) = s(j+L), j = 0 .. n-L-1: solvable iff the augmented column
// adds no rank.
bool has_register(const Field& f, const std::vector<std::uint64_t>& s, std::size_t n, std::size_t L) {
  if (L >= n) return true;
  std::vector<std::vector<std::uint64_t>> rows;
  for (std::size_t j = 0; j + L < n; ++j) {
    std::vector<std::uint64_t> r(L + 1);
    for (std::size_t i = 0; i < L; ++i) r[i] = s[j + i];
    r[L] = s[j + L];
    rows.push_back(r);
  }
  std::size_t rank = 0;
  for (std::size_t col = 0; col <= L && rank < rows.size(); ++col) {
    std::size_t piv = rank;
    while (piv < rows.size() && rows[piv][col] == 0) ++piv;
    if (piv == rows.size()) continue;
    if (col == L) return false;  // a row 0 ... 0 | nonzero
    std::swap(rows[piv], rows[rank]);
    const std::uint64_t inv = f.inv(rows[rank][col]);
    for (auto& x : rows[rank]) x = f.mul(x, inv);
    for (std::size_t r = 0; r < rows.size(); ++r) {
      if (r == rank || rows[r][col] == 0) continue;
      const std::uint64_t factor = rows[r][col];
      for (std::size_t k = 0; k <= L; ++k) rows[r][k] = f.sub(rows[r][k], f.mul(factor, rows[rank][k]));
    }
    ++rank;
  }
  return true;
}

unsigned oracle_complexity(const Field& f, const std::vector<std::uint64_t>& s, std::size_t n) {
  unsigned L = 0;
  while (!has_register(f, s, n, L)) ++L;
  return L;
}

void expect_regenerates(const Field& f, const std::vector<std::uint64_t>& s, const Synthesis& syn) {
  if (syn.linear_complexity == 0) {
    for (auto x : s) EXPECT_EQ(x, 0u);
    return;
  }
  Register reg(f, syn.coefficients);
  std::vector<std::uint64_t> init(s.begin(), s.begin() + syn.linear_complexity);
  EXPECT_EQ(reg.output(init, s.size()), s);
  EXPECT_EQ(syn.characteristic_polynomial, reg.characteristic_polynomial());
}

}  // namespace

TEST(BerlekampMassey, ProfileMatchesLinearAlgebraOnEveryPrefix) {
  std::mt19937_64 rng(17);
  for (std::uint64_t q : {2ull, 3ull, 4ull, 5ull, 7ull, 8ull, 9ull}) {
    Field f(q);
    for (int t = 0; t < 40; ++t) {
      const std::size_t n = 1 + rng() % 20;
      std::vector<std::uint64_t> s(n);
      // Mix random, sparse and register-generated sequences.
      for (auto& x : s) x = (t % 3 == 1 && rng() % 4) ? 0 : rng() % q;
      if (t % 3 == 2 && n > 4) {
        Register reg(f, lfsr_test::random_coefficients(rng, q, 3));
        s = reg.output({rng() % q, rng() % q, rng() % q}, n);
      }
      const Synthesis syn = berlekamp_massey(f, s, true);
      ASSERT_EQ(syn.profile.size(), n);
      for (std::size_t k = 1; k <= n; ++k)
        ASSERT_EQ(syn.profile[k - 1], oracle_complexity(f, s, k)) << "q=" << q << " prefix " << k;
      EXPECT_EQ(syn.linear_complexity, syn.profile.back());
      EXPECT_EQ(syn.unique, 2 * syn.linear_complexity <= n);
      expect_regenerates(f, s, syn);
    }
  }
}

TEST(BerlekampMassey, MagmaHandbookExample) {
  const std::vector<std::uint64_t> s = {1, 1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0};
  const Synthesis syn = berlekamp_massey(Field(2), s, true);
  EXPECT_EQ(syn.linear_complexity, 5u);
  EXPECT_EQ(poly_to_string(syn.connection_polynomial), "x^3 + x^2 + 1");
  EXPECT_EQ(poly_to_string(syn.characteristic_polynomial), "x^5 + x^3 + x^2");
  EXPECT_EQ(syn.coefficients, (std::vector<std::uint64_t>{0, 0, 1, 1, 0}));
  EXPECT_TRUE(syn.unique);
  expect_regenerates(Field(2), s, syn);
}

TEST(BerlekampMassey, GeneralAndGf2PathsAgree) {
  // GF(2) goes through the bit-packed variant; a GF(2) sequence embedded in
  // GF(4) (subfield {0, 1}) goes through the general one: same complexity.
  std::mt19937_64 rng(23);
  for (int t = 0; t < 30; ++t) {
    std::vector<std::uint64_t> s(1 + rng() % 300);
    for (auto& x : s) x = rng() & 1;
    const auto a = berlekamp_massey(Field(2), s, true), b = berlekamp_massey(Field(4), s, true);
    EXPECT_EQ(a.profile, b.profile);
    EXPECT_EQ(a.connection_polynomial, b.connection_polynomial);
  }
}

TEST(BerlekampMassey, Mt19937LowBitHasComplexity19937) {
  std::mt19937_64 mt;
  std::vector<std::uint64_t> s(2 * 19937 + 64);
  for (auto& x : s) x = mt() & 1;
  const Synthesis syn = berlekamp_massey(Field(2), s);
  EXPECT_EQ(syn.linear_complexity, 19937u);
  EXPECT_TRUE(syn.unique);
}

TEST(BerlekampMassey, BadInput) {
  EXPECT_THROW(berlekamp_massey(Field(2), {}), std::invalid_argument);
  try {
    berlekamp_massey(Field(3), {0, 1, 3});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("sequence"), std::string::npos);
  }
  const auto zero = berlekamp_massey(Field(2), {0, 0, 0});
  EXPECT_EQ(zero.linear_complexity, 0u);
  EXPECT_EQ(poly_to_string(zero.characteristic_polynomial), "1");
}

TEST(Sequence, OutputAndStep) {
  Register reg(Field(2), {1, 1, 0, 1});
  EXPECT_EQ(reg.output({1, 0, 0, 0}, 10), (std::vector<std::uint64_t>{1, 0, 0, 0, 1, 1, 1, 0, 0, 0}));  // period 6
  std::vector<std::uint64_t> s = {1, 0, 0, 0};
  reg.step(s);
  EXPECT_EQ(s, (std::vector<std::uint64_t>{0, 0, 0, 1}));
  EXPECT_THROW(reg.output({1, 0, 0}, 4), std::invalid_argument);
  EXPECT_THROW(reg.output({1, 0, 0, 2}, 4), std::invalid_argument);
  EXPECT_THROW(Register(Field(2), {}), std::invalid_argument);
}

TEST(Sequence, PeriodAndPreperiodMatchWalking) {
  std::mt19937_64 rng(31);
  FactorCache cache;
  for (std::uint64_t q : {2ull, 3ull, 4ull, 5ull, 9ull}) {
    Field f(q);
    for (int t = 0; t < 60; ++t) {
      const unsigned d = 1 + rng() % 6;
      auto c = lfsr_test::random_coefficients(rng, q, d);
      if (t % 3 == 0) c[0] = 0;
      Register reg(f, c);
      auto s = lfsr_test::random_coefficients(rng, q, d);
      // Walk: first repeat of a state gives pre-period and period.
      std::map<std::vector<std::uint64_t>, std::uint64_t> seen;
      auto x = s;
      std::uint64_t k = 0;
      while (!seen.count(x)) {
        seen[x] = k++;
        reg.step(x);
      }
      const StatePeriod sp = state_period(reg, s, cache);
      EXPECT_EQ(sp.preperiod, seen[x]) << "q=" << q;
      EXPECT_EQ(sp.period, BigInt(k - seen[x])) << "q=" << q;
    }
  }
}
