// Cycle structure: algebra == library enumeration == naive oracle, OEIS counts,
// hand-worked small examples (x^4 + x^2 + 1, x^5 + x^4 + 1, GF(3) degree 3).
#include <gtest/gtest.h>

#include <thread>

#include "oracles.hpp"

using namespace lfsr;

namespace {

std::map<std::uint64_t, std::uint64_t> as_map(const CycleStructure& cs) {
  std::map<std::uint64_t, std::uint64_t> m;
  for (const auto& c : cs.cycles) m[*c.length.to_uint64()] = *c.count.to_uint64();
  return m;
}

std::string describe(const Field& f, const std::vector<std::uint64_t>& c) {
  std::string s = "GF(" + std::to_string(f.q()) + ") [";
  for (auto x : c) s += std::to_string(x) + ",";
  return s + "]";
}

void expect_consistent(const CycleStructure& cs) {
  BigInt periodic(0), order(1);
  for (const auto& c : cs.cycles) {
    periodic += c.length * c.count;
    order = BigInt::lcm(order, c.length);
  }
  EXPECT_EQ(periodic, cs.periodic_states);
  EXPECT_EQ(order, cs.order);
  EXPECT_EQ(cs.periodic_states + cs.transient_states, cs.states);
}

// Coefficients of the register whose characteristic polynomial is f (monic).
std::vector<std::uint64_t> coefficients_of(const Field& field, const Poly& f) {
  std::vector<std::uint64_t> c(f.size() - 1);
  for (std::size_t i = 0; i + 1 < f.size(); ++i) c[i] = field.neg(f[i]);
  return c;
}

Poly multiply(const Field& field, const Poly& a, const Poly& b) {
  Poly r(a.size() + b.size() - 1, 0);
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = 0; j < b.size(); ++j) r[i + j] = field.add(r[i + j], field.mul(a[i], b[j]));
  return r;
}

// Compares algebra, library enumeration (with listing) and the naive oracle.
void check_register(const Field& f, const std::vector<std::uint64_t>& c, FactorCache& cache) {
  SCOPED_TRACE(describe(f, c));
  const CycleStructure alg = cycle_structure(f, c, cache);
  const Enumeration en = enumerate_cycles(f, c, true);
  const auto naive = lfsr_test::naive_structure(Register(f, c));
  expect_consistent(alg);
  expect_consistent(en.structure);
  EXPECT_EQ(as_map(alg), naive.cycles);
  EXPECT_EQ(as_map(en.structure), naive.cycles);
  EXPECT_EQ(alg.transient_states, BigInt(naive.transient));
  EXPECT_EQ(en.structure.transient_states, BigInt(naive.transient));
  EXPECT_EQ(alg.max_tail, naive.max_tail);
  EXPECT_EQ(en.structure.max_tail, naive.max_tail);
  EXPECT_EQ(alg.cycle_count, en.structure.cycle_count);
  EXPECT_EQ(alg.order, en.structure.order);
  ASSERT_EQ(en.cycle_list.size(), naive.cycle_list.size());
  for (std::size_t i = 0; i < naive.cycle_list.size(); ++i) {
    EXPECT_EQ(en.cycle_list[i].states, naive.cycle_list[i]);
    EXPECT_EQ(en.cycle_list[i].length, naive.cycle_list[i].size());
  }
}

std::uint64_t states_limit(std::uint64_t q) { return q <= 3 ? 800 : 700; }

}  // namespace

TEST(Cycles, AlgebraMatchesEnumerationOnRandomRegisters) {
  std::mt19937_64 rng(2026);
  FactorCache cache;
  int checked = 0;
  for (std::uint64_t q : {2ull, 3ull, 5ull, 7ull, 4ull, 8ull, 9ull}) {
    Field f(q);
    unsigned max_d = 1;
    for (std::uint64_t n = q; n * q <= states_limit(q); n *= q) ++max_d;
    for (int i = 0; i < 60; ++i) {
      const unsigned d = 1 + rng() % max_d;
      auto c = lfsr_test::random_coefficients(rng, q, d);
      if (i % 4 == 0) c[0] = 0;                // singular
      if (i % 8 == 0 && d > 2) c[1] = 0;       // often x^2 | f
      check_register(f, c, cache);
      ++checked;
    }
  }
  EXPECT_GE(checked, 400);
}

TEST(Cycles, RepeatedFactorsAndSingular) {
  std::mt19937_64 rng(99);
  FactorCache cache;
  int checked = 0;
  for (std::uint64_t q : {2ull, 3ull, 4ull, 5ull, 9ull}) {
    Field f(q);
    for (int i = 0; i < 25; ++i) {
      // f = x^h * g^2 * (x - a)^e with small random g.
      Poly g = {rng() % q, 1};
      if (q <= 4 && rng() % 2) g = {rng() % q, rng() % q, 1};
      Poly p = multiply(f, g, g);
      const unsigned e = rng() % 3;
      const Poly lin = {rng() % q, 1};
      for (unsigned j = 0; j < e; ++j) p = multiply(f, p, lin);
      const unsigned h = rng() % 2;
      if (h) p = multiply(f, p, Poly{0, 1});
      std::uint64_t states = 1;
      for (std::size_t j = 1; j < p.size(); ++j) states *= q;
      if (states > 3000) continue;
      check_register(f, coefficients_of(f, p), cache);
      ++checked;
    }
  }
  EXPECT_GE(checked, 80);
}

TEST(Cycles, LargerSpacesAlgebraVsEnumeration) {
  std::mt19937_64 rng(5);
  FactorCache cache;
  for (auto [q, d] : {std::pair{2ull, 16u}, {2ull, 18u}, {3ull, 10u}, {4ull, 8u}, {5ull, 6u}, {9ull, 5u}}) {
    Field f(q);
    for (int i = 0; i < 4; ++i) {
      auto c = lfsr_test::random_coefficients(rng, q, d);
      if (i == 3) c[0] = 0;
      SCOPED_TRACE(describe(f, c));
      const auto alg = cycle_structure(f, c, cache);
      const auto en = enumerate_cycles(f, c).structure;
      EXPECT_EQ(as_map(alg), as_map(en));
      EXPECT_EQ(alg.transient_states, en.transient_states);
      EXPECT_EQ(alg.max_tail, en.max_tail);
    }
  }
}

TEST(Cycles, HandWorkedExamples) {
  FactorCache cache;
  using M = std::map<std::uint64_t, std::uint64_t>;
  EXPECT_EQ(as_map(cycle_structure(Field(2), {1, 0, 1, 0}, cache)), (M{{1, 1}, {3, 1}, {6, 2}}));
  EXPECT_EQ(as_map(cycle_structure(Field(2), {1, 0, 0, 0, 1}, cache)), (M{{1, 1}, {3, 1}, {7, 1}, {21, 1}}));
  EXPECT_EQ(as_map(cycle_structure(Field(3), {2, 2, 0}, cache)), (M{{1, 3}, {8, 3}}));
  const auto s = cycle_structure(Field(2), {1, 1, 0, 1}, cache);
  EXPECT_EQ(s.order.str(), "6");
}

TEST(Cycles, OeisA000031PureCyclingRegister) {
  // Binary necklaces: a(n) = (1/n) sum_{d | n} phi(d) 2^(n/d).
  FactorCache cache;
  Field f(2);
  for (unsigned n = 1; n <= 40; ++n) {
    std::uint64_t sum = 0;
    for (unsigned d = 1; d <= n; ++d)
      if (n % d == 0) sum += lfsr_test::euler_phi(d) << (n / d);
    std::vector<std::uint64_t> c(n, 0);
    c[0] = 1;  // s(k+n) = s(k): x^n + 1
    EXPECT_EQ(cycle_structure(f, c, cache).cycle_count, BigInt(sum / n)) << "n = " << n;
  }
}

TEST(Cycles, OeisA000013PureSummingRegister) {
  // The pure summing register with n stages (x^n + ... + x + 1) has A000013(n+1)
  // cycles, a(m) = (1/(2m)) sum_{d | m} phi(2d) 2^(m/d).
  FactorCache cache;
  Field f(2);
  for (unsigned n = 1; n <= 36; ++n) {
    const unsigned m = n + 1;
    std::uint64_t sum = 0;
    for (unsigned d = 1; d <= m; ++d)
      if (m % d == 0) sum += lfsr_test::euler_phi(2 * d) << (m / d);
    std::vector<std::uint64_t> c(n, 1);
    EXPECT_EQ(cycle_structure(f, c, cache).cycle_count, BigInt(sum / (2 * m))) << "n = " << n;
  }
}

TEST(Cycles, LargeDegreesAreConsistent) {
  std::mt19937_64 rng(3);
  FactorCache cache;
  for (unsigned d : {64u, 100u, 128u}) {
    auto c = lfsr_test::random_coefficients(rng, 2, d);
    c[0] = 1;
    const auto cs = cycle_structure(Field(2), c, cache);
    expect_consistent(cs);
    EXPECT_EQ(cs.states, BigInt::pow(2, d));
  }
  // Singular: q^(d-h) periodic states, max tail h.
  std::vector<std::uint64_t> c(40, 0);
  c[3] = c[7] = c[39] = 1;
  const auto cs = cycle_structure(Field(2), c, cache);
  EXPECT_EQ(cs.max_tail, 3u);
  EXPECT_EQ(cs.periodic_states, BigInt::pow(2, 37));
  expect_consistent(cs);
}

TEST(Enumerate, MemoryAndLimits) {
  EXPECT_EQ(*enumeration_memory_bytes(2, 20, false), (1u << 20) / 8);
  EXPECT_EQ(*enumeration_memory_bytes(2, 20, true), 1u << 20);
  EXPECT_EQ(*enumeration_memory_bytes(3, 4, false, true), 11u + 8 * 81);
  EXPECT_FALSE(enumeration_memory_bytes(2, 64, false).has_value());
  EXPECT_THROW(enumerate_cycles(Field(2), std::vector<std::uint64_t>(41, 1)), std::invalid_argument);
  EXPECT_EQ(index_of_state(3, {1, 2, 0}), 7u);
  EXPECT_EQ(state_of_index(3, 3, 7), (std::vector<std::uint64_t>{1, 2, 0}));
}

TEST(Enumerate, LargeFieldsWithoutTables) {
  // q > 4096 steps digit by digit; compare with the algebra.
  FactorCache cache;
  for (std::uint64_t q : {4099ull, 5041ull /* 71^2 */, 1ull << 13}) {
    Field f(q);
    for (const std::vector<std::uint64_t>& c : {std::vector<std::uint64_t>{3}, {0}, {q - 1}, {q - 2}}) {
      const auto alg = cycle_structure(f, c, cache);
      const auto en = enumerate_cycles(f, c).structure;
      EXPECT_EQ(as_map(alg), as_map(en)) << q;
      EXPECT_EQ(alg.transient_states, en.transient_states);
    }
  }
  Field f(4099);  // degree 2: 16.8 million states
  const std::vector<std::uint64_t> c = {7, 1};
  EXPECT_EQ(as_map(cycle_structure(f, c, cache)), as_map(enumerate_cycles(f, c).structure));
}

TEST(Cycles, SharedReadOnlyCacheAcrossThreads) {
  // One cache built once and shared const; each thread adds a private layer.
  auto shared = std::make_shared<FactorCache>();
  shared->precompute(2, 64);
  const std::shared_ptr<const FactorCache> parent = shared;
  const Field field(2);
  const auto regs = lfsr_test::random_binary_registers(8, 40, [](int) { return 80u; });
  const std::vector<BigInt> expected = lfsr_test::cycle_counts_alone(field, regs);
  std::vector<std::vector<BigInt>> got(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      FactorCache local(parent);
      for (const auto& c : regs) got[t].push_back(cycle_structure(field, c, local).cycle_count);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(got[0], expected);
  EXPECT_EQ(got[1], expected);
  EXPECT_EQ(shared->size(), 64u);
}
