// Independent oracles for the lfsr tests: deliberately naive, sharing no code
// with the library beyond Field arithmetic and Register stepping.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "lfsr/lfsr.hpp"

namespace lfsr_test {

// Everything about a functional graph on a tiny state space, by definition:
// periodic = on a cycle, tail = steps until periodic.
struct NaiveStructure {
  std::map<std::uint64_t, std::uint64_t> cycles;  // length -> count
  std::uint64_t transient = 0;
  unsigned max_tail = 0;
  std::vector<std::vector<std::uint64_t>> cycle_list;  // each from its least state, sorted
};

inline NaiveStructure naive_structure(const lfsr::Register& reg) {
  const std::uint64_t q = reg.field().q();
  const unsigned d = reg.degree();
  std::uint64_t n = 1;
  for (unsigned i = 0; i < d; ++i) n *= q;
  std::vector<std::uint64_t> next(n);
  for (std::uint64_t s = 0; s < n; ++s) {
    std::vector<std::uint64_t> st(d);
    std::uint64_t x = s;
    for (unsigned i = 0; i < d; ++i, x /= q) st[i] = x % q;
    reg.step(st);
    std::uint64_t idx = 0;
    for (unsigned i = d; i-- > 0;) idx = idx * q + st[i];
    next[s] = idx;
  }
  // After n steps every state sits on its cycle.
  std::set<std::uint64_t> periodic;
  for (std::uint64_t s = 0; s < n; ++s) {
    std::uint64_t x = s;
    for (std::uint64_t i = 0; i < n; ++i) x = next[x];
    periodic.insert(x);
  }
  NaiveStructure out;
  std::set<std::uint64_t> done;
  for (std::uint64_t s : periodic) {  // ascending: s is the least of its cycle
    if (done.count(s)) continue;
    std::vector<std::uint64_t> cyc;
    std::uint64_t x = s;
    do { cyc.push_back(x); done.insert(x); x = next[x]; } while (x != s);
    ++out.cycles[cyc.size()];
    out.cycle_list.push_back(cyc);
  }
  for (std::uint64_t s = 0; s < n; ++s) {
    unsigned k = 0;
    for (std::uint64_t x = s; !periodic.count(x); x = next[x]) ++k;
    if (k) ++out.transient;
    out.max_tail = std::max(out.max_tail, k);
  }
  return out;
}

inline std::vector<std::uint64_t> random_coefficients(std::mt19937_64& rng, std::uint64_t q, unsigned d) {
  std::vector<std::uint64_t> c(d);
  for (auto& x : c) x = rng() % q;
  return c;
}

// `count` random nonsingular (c0 = 1) binary registers, register i of degree degree(i).
template <class Degree>
std::vector<std::vector<std::uint64_t>> random_binary_registers(std::uint64_t seed, int count, Degree degree) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::uint64_t>> regs;
  for (int i = 0; i < count; ++i) {
    auto c = random_coefficients(rng, 2, degree(i));
    c[0] = 1;
    regs.push_back(c);
  }
  return regs;
}

// Their cycle counts, computed alone on a fresh cache: the reference for
// runs that share a cache between threads.
inline std::vector<lfsr::BigInt> cycle_counts_alone(const lfsr::Field& field,
                                                    const std::vector<std::vector<std::uint64_t>>& regs) {
  lfsr::FactorCache solo;
  std::vector<lfsr::BigInt> counts;
  for (const auto& c : regs) counts.push_back(lfsr::cycle_structure(field, c, solo).cycle_count);
  return counts;
}

inline std::uint64_t euler_phi(std::uint64_t n) {
  std::uint64_t r = n;
  for (std::uint64_t p = 2; p * p <= n; ++p)
    if (n % p == 0) {
      while (n % p == 0) n /= p;
      r -= r / p;
    }
  if (n > 1) r -= r / n;
  return r;
}

}  // namespace lfsr_test
