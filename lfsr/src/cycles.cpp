#include "lfsr/cycles.hpp"

#include <map>

#include "lfsr/field.hpp"

namespace lfsr {
namespace {

using PeriodMap = std::map<BigInt, BigInt>;  // period -> number of states with it

// S(L) = sum over lcm(a, b) = L of S1(a) S2(b): the direct sum of two modules.
PeriodMap combine(const PeriodMap& a, const PeriodMap& b) {
  PeriodMap out;
  for (const auto& [pa, na] : a)
    for (const auto& [pb, nb] : b) out[BigInt::lcm(pa, pb)] += na * nb;
  return out;
}

}  // namespace

CycleStructure cycle_structure(const Field& field, const PolynomialInfo& info) {
  CycleStructure cs;
  const Poly& f = info.polynomial;
  cs.degree = static_cast<unsigned>(f.size() - 1);
  cs.characteristic_polynomial = f;
  cs.states = BigInt::pow(field.q(), cs.degree);
  cs.order = info.order;
  cs.max_tail = info.x_power;

  PeriodMap total{{BigInt(1), BigInt(1)}};
  for (const FactorInfo& fi : info.factors) {
    if (!fi.order) continue;  // the x^h part: nilpotent, contributes only tails
    // In GF(q)[x]/(g^e) the states annihilated exactly by g^j number
    // q^(mj) - q^(m(j-1)) and have period ord(g^j) (Elspas).
    const auto m = static_cast<std::uint64_t>(fi.factor.size() - 1);
    PeriodMap component{{BigInt(1), BigInt(1)}};
    BigInt below(1);
    for (unsigned j = 1; j <= fi.multiplicity; ++j) {
      BigInt upto = BigInt::pow(field.q(), m * j);
      component[order_of_power(field, *fi.order, j)] += upto - below;
      below = std::move(upto);
    }
    total = combine(total, component);
  }
  cs.cycle_count = BigInt(0);
  cs.periodic_states = BigInt(0);
  for (auto& [period, states] : total) {
    cs.periodic_states += states;
    BigInt count = exact_div(states, period);
    cs.cycle_count += count;
    cs.cycles.push_back({period, std::move(count)});
  }
  cs.transient_states = cs.states - cs.periodic_states;
  return cs;
}

CycleStructure cycle_structure(const Field& field, const std::vector<std::uint64_t>& coefficients,
                               FactorCache& cache) {
  return cycle_structure(field, analyse_polynomial(field, characteristic_polynomial(field, coefficients), cache));
}

}  // namespace lfsr
