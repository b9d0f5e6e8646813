// FactorCache as a worker uses it: an empty shared root taught by per-task
// layers, reuse of learned entries, the learn budget, concurrent use. Results
// are checked independently: the product of the factors is recomputed and
// every factor is proven prime with fmpz_is_prime.
#include <gtest/gtest.h>

#include <flint/fmpz.h>

#include <map>
#include <thread>

#include "oracles.hpp"

using namespace lfsr;

namespace {

// Product of the factors == q^m - 1 and every factor proven prime.
void expect_factorisation(const Factorization& f, std::uint64_t q, unsigned m) {
  BigInt prod(1);
  for (const auto& [prime, e] : f) {
    EXPECT_EQ(fmpz_is_prime(prime.get()), 1) << prime.str() << " in " << q << "^" << m << " - 1";
    for (unsigned i = 0; i < e; ++i) prod *= prime;
  }
  EXPECT_EQ(prod, BigInt::pow(q, m) - BigInt(1)) << q << "^" << m << " - 1";
}

}  // namespace

TEST(FactorCache, TeachingLayerStoresInParentAndLaterLayersReuseIt) {
  auto root = std::make_shared<FactorCache>();
  EXPECT_EQ(root->find(2, 160), nullptr);  // nothing up front
  const Factorization* first = nullptr;
  {
    FactorCache task1 = FactorCache::teaching(root);
    first = &task1.get(2, 160);
    EXPECT_GT(task1.factored_count(), 0u);
    EXPECT_EQ(task1.size(), 0u);  // kept by the root, not by the task layer
    const std::size_t n = task1.factored_count();
    EXPECT_EQ(&task1.get(2, 160), first);  // a second call does not refactor
    EXPECT_EQ(task1.factored_count(), n);
  }
  // The task layer is gone; the fact stays in the root.
  ASSERT_EQ(root->find(2, 160), first);
  EXPECT_EQ(root->size(), 1u);
  EXPECT_GT(root->learned_bytes(), 0u);
  FactorCache task2 = FactorCache::teaching(root);
  EXPECT_EQ(&task2.get(2, 160), first);
  EXPECT_EQ(task2.factored_count(), 0u);
  // Cyclotomic pieces are learned too: 2^80 - 1 divides 2^160 - 1 and is
  // assembled from pieces the first task already factored.
  expect_factorisation(task2.get(2, 80), 2, 80);
  EXPECT_EQ(task2.factored_count(), 0u);
  expect_factorisation(*first, 2, 160);
}

TEST(FactorCache, ReadOnlyLayerNeverTeaches) {
  auto root = std::make_shared<FactorCache>();
  FactorCache layer{std::shared_ptr<const FactorCache>(root)};
  expect_factorisation(layer.get(3, 20), 3, 20);
  EXPECT_EQ(root->find(3, 20), nullptr);
  EXPECT_EQ(root->size(), 0u);
  EXPECT_EQ(layer.size(), 1u);
}

TEST(FactorCache, LearnBudgetBoundsTheSharedRoot) {
  constexpr std::size_t kBudget = 2000;  // bytes: room for a few entries only
  auto root = std::make_shared<FactorCache>(kBudget);
  std::size_t kept_by_layers = 0;
  for (unsigned m = 1; m <= 60; ++m) {
    FactorCache task = FactorCache::teaching(root);
    expect_factorisation(task.get(2, m), 2, m);  // still answered when the root is full
    kept_by_layers += task.size();
  }
  EXPECT_LE(root->learned_bytes(), kBudget);
  EXPECT_GT(root->size(), 0u);
  EXPECT_LT(root->size(), 60u);
  EXPECT_GT(kept_by_layers, 0u);
}

TEST(FactorCache, ConcurrentTeachingLayersAndRootFromThreads) {
  // Several threads, each a stream of task layers on one root, plus direct
  // get()/find() on the root: same (q, m) in different orders, so inserts of
  // the same key race. Every answer is checked; every key ends up stored once.
  auto root = std::make_shared<FactorCache>();
  const std::vector<std::uint64_t> fields = {2, 3, 5, 4};
  constexpr unsigned kMaxM = 48;
  std::vector<std::map<std::pair<std::uint64_t, unsigned>, const Factorization*>> seen(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (unsigned k = 0; k < kMaxM; ++k) {
        const unsigned m = t % 2 ? kMaxM - k : k + 1;  // half the threads go downwards
        for (std::uint64_t q : fields) {
          if (t == 3) {
            seen[t][{q, m}] = &root->get(q, m);
          } else {
            FactorCache task = FactorCache::teaching(root);
            seen[t][{q, m}] = &task.get(q, m);
          }
          (void)root->find(q, m);
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(root->size(), fields.size() * kMaxM);
  for (std::uint64_t q : fields)
    for (unsigned m = 1; m <= kMaxM; ++m) {
      const Factorization* stored = root->find(q, m);
      ASSERT_NE(stored, nullptr);
      expect_factorisation(*stored, q, m);
      for (int t = 0; t < 4; ++t) EXPECT_EQ((seen[t][std::pair{q, m}]), stored) << "thread " << t;
    }
}

TEST(FactorCache, ConcurrentCycleStructuresOnOneLearningRoot) {
  // Whole analyses from several threads on one learning root agree with a
  // private cache's answers.
  auto root = std::make_shared<FactorCache>();
  const Field field(2);
  const auto regs = lfsr_test::random_binary_registers(21, 30, [](int i) { return unsigned(30 + 5 * (i % 12)); });
  const std::vector<BigInt> expected = lfsr_test::cycle_counts_alone(field, regs);
  std::vector<std::vector<BigInt>> got(3);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      for (const auto& c : regs) {
        FactorCache task = FactorCache::teaching(root);
        got[t].push_back(cycle_structure(field, c, task).cycle_count);
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 3; ++t) EXPECT_EQ(got[t], expected) << "thread " << t;
  EXPECT_GT(root->size(), 0u);
}
