#include "lfsr/sequence.hpp"

#include <stdexcept>
#include <string>

#include "lfsr/bm.hpp"

namespace lfsr {

Register::Register(Field field, std::vector<std::uint64_t> coefficients)
    : field_(std::move(field)), c_(std::move(coefficients)) {
  check_coefficients(field_, c_);
}

Poly Register::characteristic_polynomial() const { return lfsr::characteristic_polynomial(field_, c_); }

void Register::check_state(const std::vector<std::uint64_t>& state) const {
  if (state.size() != c_.size())
    throw std::invalid_argument("state: needs " + std::to_string(c_.size()) + " elements (the degree), got " +
                                std::to_string(state.size()));
  for (std::size_t i = 0; i < state.size(); ++i)
    if (!field_.contains(state[i]))
      throw std::invalid_argument("state: s" + std::to_string(i) + " = " + std::to_string(state[i]) +
                                  " is out of range for GF(" + std::to_string(field_.q()) + ")");
}

std::uint64_t Register::feedback(const std::vector<std::uint64_t>& s) const {
  std::uint64_t fb = 0;
  for (std::size_t i = 0; i < c_.size(); ++i)
    if (c_[i] != 0 && s[i] != 0) fb = field_.add(fb, field_.mul(c_[i], s[i]));
  return fb;
}

void Register::step(std::vector<std::uint64_t>& s) const {
  const std::uint64_t fb = feedback(s);
  for (std::size_t i = 0; i + 1 < s.size(); ++i) s[i] = s[i + 1];
  s.back() = fb;
}

std::vector<std::uint64_t> Register::output(const std::vector<std::uint64_t>& state, std::size_t length) const {
  check_state(state);
  std::vector<std::uint64_t> out(state.begin(), state.begin() + static_cast<std::ptrdiff_t>(std::min(length, state.size())));
  out.reserve(length);
  // Sliding window over the output itself: s(n+d) from s(n..n+d-1).
  const std::size_t d = c_.size();
  while (out.size() < length) {
    std::uint64_t fb = 0;
    const std::size_t n = out.size() - d;
    for (std::size_t i = 0; i < d; ++i)
      if (c_[i] != 0 && out[n + i] != 0) fb = field_.add(fb, field_.mul(c_[i], out[n + i]));
    out.push_back(fb);
  }
  return out;
}

StatePeriod state_period(const Register& reg, const std::vector<std::uint64_t>& state, FactorCache& cache) {
  const Field& field = reg.field();
  // The sequence satisfies a recurrence of order d, so 2d terms determine its
  // minimal polynomial uniquely.
  const Synthesis syn = berlekamp_massey(field, reg.output(state, 2 * reg.degree()));
  StatePeriod sp;
  sp.minimal_polynomial = syn.characteristic_polynomial;
  const Poly& m = sp.minimal_polynomial;
  std::size_t h = 0;
  while (h < m.size() && m[h] == 0) ++h;
  sp.preperiod = h;
  Poly g(m.begin() + static_cast<std::ptrdiff_t>(h), m.end());
  if (g.size() <= 1) {
    sp.period = BigInt(1);
    return sp;
  }
  PolynomialInfo info = analyse_polynomial(field, g, cache);
  sp.period = info.order;
  return sp;
}

}  // namespace lfsr
