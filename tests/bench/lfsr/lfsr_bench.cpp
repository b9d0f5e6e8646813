// Benchmarks of the lfsr library: algebraic cycle structure of random binary
// registers (warm factor cache), brute-force enumeration speed, and the factor
// cache as the plugin uses it (empty at setup, taught by per-task layers).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>

#include <lfsr/lfsr.hpp>

namespace {

constexpr int kRegisters = 64;  // a fixed set per degree, cycled through

std::vector<std::vector<std::uint64_t>> random_registers(unsigned d) {
  std::mt19937_64 rng(1000 + d);
  std::vector<std::vector<std::uint64_t>> regs(kRegisters, std::vector<std::uint64_t>(d));
  for (auto& c : regs) {
    for (auto& x : c) x = rng() & 1;
    c[0] = 1;  // nonsingular; singular ones are no harder
  }
  return regs;
}

void BM_CycleStructureRandomBinary(benchmark::State& state) {
  const auto d = static_cast<unsigned>(state.range(0));
  const lfsr::Field field(2);
  const auto regs = random_registers(d);
  lfsr::FactorCache cache;
  // Warm-up pass fills the cache with every q^m - 1 these registers need.
  // Then each register's best of three runs; worst_ms is the slowest register
  // (best-of-three keeps scheduler noise out of the worst case).
  for (const auto& c : regs) benchmark::DoNotOptimize(lfsr::cycle_structure(field, c, cache));
  std::vector<double> best(regs.size(), 1e9);
  for (int pass = 0; pass < 3; ++pass)
    for (std::size_t r = 0; r < regs.size(); ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      benchmark::DoNotOptimize(lfsr::cycle_structure(field, regs[r], cache));
      best[r] = std::min(best[r], std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  const double worst = *std::max_element(best.begin(), best.end());
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(lfsr::cycle_structure(field, regs[i++ % regs.size()], cache));
  state.counters["worst_ms"] = worst * 1e3;
}
BENCHMARK(BM_CycleStructureRandomBinary)->Arg(32)->Arg(64)->Arg(128)->Arg(256)->Unit(benchmark::kMicrosecond);

// Primitive trinomials/pentanomials: one cycle through all nonzero states.
std::vector<std::uint64_t> primitive_register(unsigned d) {
  std::vector<std::uint64_t> c(d, 0);
  c[0] = 1;
  if (d == 20) c[3] = 1;       // x^20 + x^3 + 1
  else if (d == 28) c[3] = 1;  // x^28 + x^3 + 1
  else if (d == 16) c[2] = c[3] = c[5] = 1;  // x^16 + x^5 + x^3 + x^2 + 1
  return c;
}

void BM_EnumerateBinary(benchmark::State& state) {
  const auto d = static_cast<unsigned>(state.range(0));
  const lfsr::Field field(2);
  const auto c = primitive_register(d);
  for (auto _ : state) benchmark::DoNotOptimize(lfsr::enumerate_cycles(field, c));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) << d);
}
BENCHMARK(BM_EnumerateBinary)->Arg(20)->Arg(28)->Unit(benchmark::kMillisecond);

void BM_EnumerateBinarySingular(benchmark::State& state) {
  const auto d = static_cast<unsigned>(state.range(0));
  const lfsr::Field field(2);
  auto c = primitive_register(d);
  c[0] = 0;
  c[1] = 1;
  for (auto _ : state) benchmark::DoNotOptimize(lfsr::enumerate_cycles(field, c));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) << d);
}
BENCHMARK(BM_EnumerateBinarySingular)->Arg(20)->Unit(benchmark::kMillisecond);

void BM_EnumerateGF3(benchmark::State& state) {
  const lfsr::Field field(3);
  const std::vector<std::uint64_t> c = {1, 2, 0, 1, 0, 0, 1, 0, 2, 0, 0, 1};  // degree 12: 531441 states
  for (auto _ : state) benchmark::DoNotOptimize(lfsr::enumerate_cycles(field, c));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 531441);
}
BENCHMARK(BM_EnumerateGF3)->Unit(benchmark::kMillisecond);

void BM_BerlekampMasseyBinary(benchmark::State& state) {
  std::mt19937_64 mt;
  std::vector<std::uint64_t> s(static_cast<std::size_t>(state.range(0)));
  for (auto& x : s) x = mt() & 1;
  const lfsr::Field field(2);
  for (auto _ : state) benchmark::DoNotOptimize(lfsr::berlekamp_massey(field, s));
}
BENCHMARK(BM_BerlekampMasseyBinary)->Arg(1000)->Arg(40000)->Unit(benchmark::kMillisecond);

// The plugin's setup before it went lazy: every binary m <= 128 and seven
// small fields m <= 32 factored up front (for comparison).
void BM_SharedCacheBuild(benchmark::State& state) {
  for (auto _ : state) {
    lfsr::FactorCache cache;
    cache.precompute(2, 128);
    for (std::uint64_t q : {3, 4, 5, 7, 8, 9, 16}) cache.precompute(q, 32);
    benchmark::DoNotOptimize(cache.size());
  }
}
BENCHMARK(BM_SharedCacheBuild)->Unit(benchmark::kMillisecond)->Iterations(3);

// The plugin's setup now (make_shared_cache): an empty root cache.
void BM_SetupCold(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(std::make_shared<lfsr::FactorCache>(std::size_t{4} << 20));
}
BENCHMARK(BM_SetupCold)->Unit(benchmark::kMicrosecond);

// A one-shot run's lfsr work: setup, then four registers of degree 12-14,
// each through its own teaching layer, on a cold cache every iteration.
void BM_OneShotFourSmallRegisters(benchmark::State& state) {
  const lfsr::Field field(2);
  const std::vector<std::vector<std::uint64_t>> regs = {{1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1},
                                                        {1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1},
                                                        {1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1},
                                                        {1, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1}};
  for (auto _ : state) {
    auto root = std::make_shared<lfsr::FactorCache>(std::size_t{4} << 20);
    for (const auto& c : regs) {
      lfsr::FactorCache layer = lfsr::FactorCache::teaching(root);
      benchmark::DoNotOptimize(lfsr::cycle_structure(field, c, layer));
    }
  }
}
BENCHMARK(BM_OneShotFourSmallRegisters)->Unit(benchmark::kMicrosecond);

// x^160 + x^5 + x^3 + x^2 + 1 (primitive): needs 2^160 - 1, beyond what the
// old setup precomputed. first_ms on a fresh root, second_ms through a new
// layer on the same root (the next task of the same worker).
void BM_Degree160FirstVsSecond(benchmark::State& state) {
  const lfsr::Field field(2);
  std::vector<std::uint64_t> c(160, 0);
  c[0] = c[2] = c[3] = c[5] = 1;
  const auto f = lfsr::characteristic_polynomial(field, c);
  double first = 0, second = 0;
  for (auto _ : state) {
    auto root = std::make_shared<lfsr::FactorCache>(std::size_t{4} << 20);
    for (double* acc : {&first, &second}) {
      const auto t0 = std::chrono::steady_clock::now();
      lfsr::FactorCache layer = lfsr::FactorCache::teaching(root);
      benchmark::DoNotOptimize(lfsr::analyse_polynomial(field, f, layer));
      *acc += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  }
  const auto n = static_cast<double>(state.iterations());
  state.counters["first_ms"] = first / n * 1e3;
  state.counters["second_ms"] = second / n * 1e3;
}
BENCHMARK(BM_Degree160FirstVsSecond)->Unit(benchmark::kMillisecond)->Iterations(20);

// Where the degree-160 time goes: factoring 2^160 - 1 on a fresh cache (what
// the learned cache saves), factoring the polynomial, its order (warm cache).
void BM_Degree160Parts(benchmark::State& state) {
  const lfsr::Field field(2);
  std::vector<std::uint64_t> c(160, 0);
  c[0] = c[2] = c[3] = c[5] = 1;
  const auto f = lfsr::characteristic_polynomial(field, c);
  double factor_int = 0, factor_poly = 0, order = 0;
  const auto since = [](auto t0) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  for (auto _ : state) {
    lfsr::FactorCache cache;
    auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(cache.get(2, 160));
    factor_int += since(t0);
    t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(lfsr::factor_polynomial(field, f));
    factor_poly += since(t0);
    t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(lfsr::order_of_irreducible(field, f, cache));
    order += since(t0);
  }
  const auto n = static_cast<double>(state.iterations());
  state.counters["factor_2^160-1_ms"] = factor_int / n * 1e3;
  state.counters["factor_poly_ms"] = factor_poly / n * 1e3;
  state.counters["order_ms"] = order / n * 1e3;
}
BENCHMARK(BM_Degree160Parts)->Unit(benchmark::kMillisecond)->Iterations(20);

// The warm worker path: every call through a fresh teaching layer on a root
// that has already learned what the registers need (what a task does).
void BM_CycleStructureTaughtLayer(benchmark::State& state) {
  const auto d = static_cast<unsigned>(state.range(0));
  const lfsr::Field field(2);
  const auto regs = random_registers(d);
  auto root = std::make_shared<lfsr::FactorCache>(std::size_t{4} << 20);
  for (const auto& c : regs) {
    lfsr::FactorCache layer = lfsr::FactorCache::teaching(root);
    benchmark::DoNotOptimize(lfsr::cycle_structure(field, c, layer));
  }
  std::size_t i = 0;
  for (auto _ : state) {
    lfsr::FactorCache layer = lfsr::FactorCache::teaching(root);
    benchmark::DoNotOptimize(lfsr::cycle_structure(field, regs[i++ % regs.size()], layer));
  }
}
BENCHMARK(BM_CycleStructureTaughtLayer)->Arg(16)->Arg(32)->Arg(64)->Unit(benchmark::kMicrosecond);

// The old warm path for comparison: a read-only precomputed parent with a
// per-task layer.
void BM_CycleStructureReadOnlyParent(benchmark::State& state) {
  const auto d = static_cast<unsigned>(state.range(0));
  const lfsr::Field field(2);
  const auto regs = random_registers(d);
  auto shared = std::make_shared<lfsr::FactorCache>();
  shared->precompute(2, 128);
  const std::shared_ptr<const lfsr::FactorCache> parent = shared;
  std::size_t i = 0;
  for (auto _ : state) {
    lfsr::FactorCache layer(parent);
    benchmark::DoNotOptimize(lfsr::cycle_structure(field, regs[i++ % regs.size()], layer));
  }
}
BENCHMARK(BM_CycleStructureReadOnlyParent)->Arg(16)->Arg(32)->Arg(64)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
