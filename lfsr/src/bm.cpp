#include "lfsr/bm.hpp"

#include <stdexcept>
#include <string>

#include "lfsr/field.hpp"

namespace lfsr {
namespace {

// C(x) has C[0] = 1 and s(n) + C1 s(n-1) + ... + CL s(n-L) = 0.
void finish(const Field& field, const Poly& connection, unsigned L, std::size_t n, Synthesis& out) {
  Poly c = connection;
  c.resize(L + 1, 0);  // coefficients beyond deg C are zero
  out.linear_complexity = L;
  out.coefficients.assign(L, 0);
  for (unsigned j = 0; j < L; ++j) out.coefficients[j] = field.neg(c[L - j]);
  Poly conn = c, chr(c.rbegin(), c.rend());
  while (!conn.empty() && conn.back() == 0) conn.pop_back();
  out.connection_polynomial = std::move(conn);
  out.characteristic_polynomial = std::move(chr);
  out.unique = 2 * static_cast<std::size_t>(L) <= n;
}

Synthesis massey_general(const Field& field, const std::vector<std::uint64_t>& s, bool with_profile) {
  const std::size_t n = s.size();
  Poly C{1}, B{1};
  unsigned L = 0;
  std::size_t m = 1;
  std::uint64_t b = 1;
  Synthesis out;
  for (std::size_t k = 0; k < n; ++k) {
    std::uint64_t d = s[k];
    for (unsigned i = 1; i <= L && i < C.size(); ++i) d = field.add(d, field.mul(C[i], s[k - i]));
    if (d == 0) {
      ++m;
    } else {
      const std::uint64_t coef = field.neg(field.mul(d, field.inv(b)));
      Poly T = C;
      if (C.size() < B.size() + m) C.resize(B.size() + m, 0);
      for (std::size_t i = 0; i < B.size(); ++i) C[i + m] = field.add(C[i + m], field.mul(coef, B[i]));
      if (2 * L <= k) {
        L = static_cast<unsigned>(k + 1 - L);
        B = std::move(T);
        b = d;
        m = 1;
      } else {
        ++m;
      }
    }
    if (with_profile) out.profile.push_back(L);
  }
  finish(field, C, L, n, out);
  return out;
}

// GF(2): C, B and the reversed sequence as bit vectors; a discrepancy is the
// parity of C AND the window s(k), s(k-1), ..., s(k-L).
Synthesis massey_gf2(const Field& field, const std::vector<std::uint64_t>& s, bool with_profile) {
  const std::size_t n = s.size(), words = n / 64 + 2;
  std::vector<std::uint64_t> rev(words + 1, 0), C(words, 0), B(words, 0), T;
  // rev bit (n-1-j) = s(j), so s(k-i) for i = 0.. is rev from bit n-1-k upward.
  for (std::size_t j = 0; j < n; ++j) rev[(n - 1 - j) >> 6] |= s[j] << ((n - 1 - j) & 63);
  C[0] = B[0] = 1;
  unsigned L = 0;
  std::size_t m = 1;
  Synthesis out;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t off = n - 1 - k, w0 = off >> 6, sh = off & 63;
    std::uint64_t acc = 0;
    for (std::size_t w = 0; w <= L / 64; ++w) {
      std::uint64_t win = rev[w0 + w] >> sh;
      if (sh) win |= rev[w0 + w + 1] << (64 - sh);
      std::uint64_t cw = C[w];
      if (w == L / 64 && (L % 64) != 63) cw &= (std::uint64_t{1} << (L % 64 + 1)) - 1;
      acc ^= cw & win;
    }
    if ((std::popcount(acc) & 1) == 0) {
      ++m;
    } else {
      const bool grow = 2 * L <= k;
      if (grow) T = C;
      const std::size_t ws = m >> 6, bs = m & 63;  // C ^= B << m
      for (std::size_t i = words; i-- > ws;) {
        std::uint64_t v = B[i - ws] << bs;
        if (bs && i > ws) v |= B[i - ws - 1] >> (64 - bs);
        C[i] ^= v;
      }
      if (grow) {
        L = static_cast<unsigned>(k + 1 - L);
        B.swap(T);
        m = 1;
      } else {
        ++m;
      }
    }
    if (with_profile) out.profile.push_back(L);
  }
  Poly conn(L + 1, 0);
  for (unsigned i = 0; i <= L; ++i) conn[i] = C[i >> 6] >> (i & 63) & 1;
  finish(field, conn, L, n, out);
  return out;
}

}  // namespace

Synthesis berlekamp_massey(const Field& field, const std::vector<std::uint64_t>& s, bool with_profile) {
  if (s.empty()) throw std::invalid_argument("sequence: the list must not be empty");
  for (std::size_t i = 0; i < s.size(); ++i)
    if (!field.contains(s[i]))
      throw std::invalid_argument("sequence: element " + std::to_string(i) + " = " + std::to_string(s[i]) +
                                  " is out of range for GF(" + std::to_string(field.q()) + ")");
  return field.q() == 2 ? massey_gf2(field, s, with_profile) : massey_general(field, s, with_profile);
}

}  // namespace lfsr
