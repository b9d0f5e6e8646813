#include "lfsr/enumerate.hpp"

#include <algorithm>
#include <bit>
#include <map>
#include <stdexcept>

#include "lfsr/field.hpp"

namespace lfsr {
namespace {

constexpr std::uint64_t kMaxStates = std::uint64_t{1} << 40;

// GF(2): the state is the bit pattern itself; feedback is a parity.
struct Gf2Step {
  std::uint64_t mask;
  unsigned top;
  std::uint64_t operator()(std::uint64_t x) const noexcept {
    return (x >> 1) | (static_cast<std::uint64_t>(std::popcount(x & mask) & 1) << top);
  }
};

// GF(q): feedback from per-chunk tables over w digits at a time, so one step
// costs a few divisions instead of d of them.
struct TableStep {
  const Field* field;
  std::uint64_t q, chunk, top_weight;
  std::vector<std::vector<std::uint64_t>> tables;
  std::vector<std::uint8_t> add_table;  // q <= 256: q*q sums
  std::vector<std::uint64_t> coeffs;    // q > 4096: no tables, digit by digit

  TableStep(const Field& f, const std::vector<std::uint64_t>& c) : field(&f), q(f.q()) {
    const auto d = static_cast<unsigned>(c.size());
    top_weight = 1;
    for (unsigned i = 1; i < d; ++i) top_weight *= q;
    if (q > 4096) {
      coeffs = c;
      return;
    }
    unsigned w = 1;
    chunk = q;
    while (w < d && chunk * q <= 4096) chunk *= q, ++w;
    for (unsigned base = 0; base < d; base += w) {
      const unsigned len = std::min(w, d - base);
      std::uint64_t size = 1;
      for (unsigned i = 0; i < len; ++i) size *= q;
      std::vector<std::uint64_t> t(chunk, 0);  // padded entries stay unused
      for (std::uint64_t v = 0; v < size; ++v) {
        std::uint64_t acc = 0, x = v;
        for (unsigned i = 0; i < len; ++i, x /= q) acc = f.add(acc, f.mul(c[base + i], x % q));
        t[v] = acc;
      }
      tables.push_back(std::move(t));
    }
    if (q <= 256) {
      add_table.resize(q * q);
      for (std::uint64_t a = 0; a < q; ++a)
        for (std::uint64_t b = 0; b < q; ++b) add_table[a * q + b] = static_cast<std::uint8_t>(f.add(a, b));
    }
  }
  std::uint64_t operator()(std::uint64_t x) const {
    std::uint64_t fb = 0, rest = x;
    if (!coeffs.empty()) {
      for (std::size_t i = 0; i < coeffs.size(); ++i, rest /= q) fb = field->add(fb, field->mul(coeffs[i], rest % q));
      return x / q + fb * top_weight;
    }
    for (const auto& t : tables) {
      const std::uint64_t v = t[rest % chunk];
      fb = add_table.empty() ? field->add(fb, v) : add_table[fb * q + v];
      rest /= chunk;
    }
    return x / q + fb * top_weight;
  }
};

struct Tally {
  std::map<std::uint64_t, std::uint64_t> cycles;  // length -> count
  std::uint64_t transient = 0;
  unsigned max_tail = 0;
  std::vector<ListedCycle> listed;
};

// Bijective map: each unvisited state (in ascending order) is the least of its cycle.
template <class Step>
void walk_permutation(const Step& step, std::uint64_t n, bool list, Tally& out) {
  std::vector<std::uint64_t> seen((n + 63) / 64, 0);
  for (std::uint64_t s = 0; s < n; ++s) {
    if (seen[s >> 6] == ~std::uint64_t{0}) { s |= 63; continue; }
    if (seen[s >> 6] >> (s & 63) & 1) continue;
    ListedCycle cyc;
    std::uint64_t x = s, len = 0;
    do {
      seen[x >> 6] |= std::uint64_t{1} << (x & 63);
      if (list) cyc.states.push_back(x);
      x = step(x);
      ++len;
    } while (x != s);
    ++out.cycles[len];
    if (list) { cyc.length = len; out.listed.push_back(std::move(cyc)); }
  }
}

// General functional graph (singular registers): depth byte per state.
template <class Step>
void walk_functional_graph(const Step& step, std::uint64_t n, bool list, Tally& out) {
  constexpr std::uint8_t kUnseen = 0xFF, kOnPath = 0xFE;
  std::vector<std::uint8_t> depth(n, kUnseen);
  std::vector<std::uint64_t> path;
  for (std::uint64_t s = 0; s < n; ++s) {
    if (depth[s] != kUnseen) continue;
    path.clear();
    std::uint64_t x = s;
    while (depth[x] == kUnseen) {
      depth[x] = kOnPath;
      path.push_back(x);
      x = step(x);
    }
    std::size_t tail_len = path.size();  // path[0 .. tail_len) are transient
    unsigned base = 0;
    if (depth[x] == kOnPath) {  // closed a new cycle
      tail_len = static_cast<std::size_t>(std::find(path.begin(), path.end(), x) - path.begin());
      ListedCycle cyc;
      cyc.length = path.size() - tail_len;
      for (std::size_t i = tail_len; i < path.size(); ++i) depth[path[i]] = 0;
      ++out.cycles[cyc.length];
      if (list) {
        cyc.states.assign(path.begin() + static_cast<std::ptrdiff_t>(tail_len), path.end());
        std::rotate(cyc.states.begin(), std::min_element(cyc.states.begin(), cyc.states.end()),
                    cyc.states.end());
        out.listed.push_back(std::move(cyc));
      }
    } else {
      base = depth[x];
    }
    for (std::size_t i = 0; i < tail_len; ++i) {
      const auto dep = static_cast<unsigned>(base + tail_len - i);
      depth[path[i]] = static_cast<std::uint8_t>(dep);
      out.max_tail = std::max(out.max_tail, dep);
    }
    out.transient += tail_len;
  }
}

}  // namespace

std::optional<std::uint64_t> enumeration_memory_bytes(std::uint64_t q, unsigned degree, bool singular,
                                                      bool list_cycles) {
  std::uint64_t n = 1;
  for (unsigned i = 0; i < degree; ++i) {
    if (n > UINT64_MAX / q) return std::nullopt;
    n *= q;
  }
  if (n > UINT64_MAX / 16) return std::nullopt;
  std::uint64_t bytes = singular ? n : (n + 7) / 8;
  if (list_cycles) bytes += 8 * n;
  return bytes;
}

std::vector<std::uint64_t> state_of_index(std::uint64_t q, unsigned degree, std::uint64_t index) {
  std::vector<std::uint64_t> s(degree);
  for (unsigned i = 0; i < degree; ++i, index /= q) s[i] = index % q;
  return s;
}

std::uint64_t index_of_state(std::uint64_t q, const std::vector<std::uint64_t>& state) {
  std::uint64_t idx = 0;
  for (std::size_t i = state.size(); i-- > 0;) idx = idx * q + state[i];
  return idx;
}

Enumeration enumerate_cycles(const Field& field, const std::vector<std::uint64_t>& c, bool list) {
  Poly f = characteristic_polynomial(field, c);  // validates
  const auto d = static_cast<unsigned>(c.size());
  const std::uint64_t q = field.q();
  std::uint64_t n = 1;
  for (unsigned i = 0; i < d; ++i) {
    if (n > kMaxStates / q) throw std::invalid_argument("coefficients: state space q^d is too large to enumerate");
    n *= q;
  }
  const bool singular = c[0] == 0;
  Tally t;
  auto run = [&](const auto& step) {
    if (singular) walk_functional_graph(step, n, list, t);
    else walk_permutation(step, n, list, t);
  };
  if (q == 2) {
    std::uint64_t mask = 0;
    for (unsigned i = 0; i < d; ++i) mask |= c[i] << i;
    run(Gf2Step{mask, d - 1});
  } else {
    run(TableStep(field, c));
  }
  Enumeration e;
  CycleStructure& cs = e.structure;
  cs.degree = d;
  cs.states = BigInt(n);
  cs.characteristic_polynomial = std::move(f);
  cs.order = BigInt(1);
  cs.cycle_count = BigInt(0);
  for (const auto& [len, count] : t.cycles) {
    cs.cycles.push_back({BigInt(len), BigInt(count)});
    cs.order = BigInt::lcm(cs.order, BigInt(len));
    cs.cycle_count += BigInt(count);
  }
  cs.transient_states = BigInt(t.transient);
  cs.periodic_states = BigInt(n - t.transient);
  cs.max_tail = t.max_tail;
  if (list) {
    std::sort(t.listed.begin(), t.listed.end(),
              [](const ListedCycle& a, const ListedCycle& b) { return a.states[0] < b.states[0]; });
    e.cycle_list = std::move(t.listed);
  }
  return e;
}

}  // namespace lfsr
