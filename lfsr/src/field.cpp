#include "lfsr/field.hpp"

#include <stdexcept>

#include <flint/nmod_poly.h>
#include <flint/ulong_extras.h>

#include "lfsr/poly.hpp"

namespace lfsr {

struct Field::Impl {
  fq_nmod_ctx_t ctx;
  // Log/exp tables for small extension fields: mul becomes two lookups.
  std::vector<std::uint32_t> log, exp;
  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { fq_nmod_ctx_clear(ctx); }
};

namespace {

constexpr std::uint64_t kTableLimit = 1u << 16;

// Least monic irreducible of degree k over GF(p), candidates ordered by their
// lower coefficients read as a base-p number (top coefficient first).
std::vector<std::uint64_t> least_irreducible(std::uint64_t p, unsigned k) {
  nmod_poly_t f;
  nmod_poly_init(f, p);
  std::vector<std::uint64_t> c(k + 1, 0);
  c[k] = 1;
  for (;;) {
    nmod_poly_zero(f);
    for (unsigned i = 0; i <= k; ++i) nmod_poly_set_coeff_ui(f, i, c[i]);
    if (c[0] != 0 && nmod_poly_is_irreducible(f)) break;
    unsigned i = 0;  // increment the counter c[0..k-1], c[0] least significant
    while (i < k && ++c[i] == p) c[i++] = 0;
    if (i == k) { nmod_poly_clear(f); throw std::logic_error("no irreducible polynomial found"); }
  }
  nmod_poly_clear(f);
  return c;
}

}  // namespace

Field::Field(std::uint64_t q) : q_(q) {
  if (q < 2 || q >= (std::uint64_t{1} << 63))
    throw std::invalid_argument("field: q must be a prime power 2 <= q < 2^63, got " + std::to_string(q));
  n_factor_t fac;
  n_factor_init(&fac);
  n_factor(&fac, q, 1);
  if (fac.num != 1)
    throw std::invalid_argument("field: " + std::to_string(q) + " is not a prime power");
  p_ = fac.p[0];
  k_ = fac.exp[0];
  nmod_init(&mod_, p_);
  if (k_ == 1) {
    modulus_ = {0, 1};
    return;
  }
  auto impl = std::make_shared<Impl>();
  fmpz_t pz;
  fmpz_init_set_ui(pz, p_);
  conway_ = _fq_nmod_ctx_init_conway(impl->ctx, pz, k_, "a") == 1;
  if (conway_) {
    const nmod_poly_struct* m = impl->ctx->modulus;
    modulus_.assign(m->coeffs, m->coeffs + m->length);
  } else {
    modulus_ = least_irreducible(p_, k_);
    nmod_poly_t m;
    nmod_poly_init(m, p_);
    for (unsigned i = 0; i <= k_; ++i) nmod_poly_set_coeff_ui(m, i, modulus_[i]);
    fq_nmod_ctx_init_modulus(impl->ctx, m, "a");
    nmod_poly_clear(m);
  }
  fmpz_clear(pz);
  impl_ = impl;
  if (q_ <= kTableLimit) {
    // Find a generator g of GF(q)^*: g^((q-1)/r) != 1 for each prime r | q-1.
    n_factor_t f;
    n_factor_init(&f);
    n_factor(&f, q_ - 1, 1);
    std::uint64_t g = 1;
    auto pow = [&](std::uint64_t a, std::uint64_t e) {
      std::uint64_t r = 1;
      for (; e; e >>= 1, a = mul(a, a)) if (e & 1) r = mul(r, a);
      return r;
    };
    for (bool found = false; !found;) {
      ++g;
      found = true;
      for (int i = 0; i < f.num && found; ++i) found = pow(g, (q_ - 1) / f.p[i]) != 1;
    }
    std::vector<std::uint32_t> lg(q_, 0), ex(2 * (q_ - 1));
    std::uint64_t a = 1;
    for (std::uint64_t i = 0; i < q_ - 1; ++i, a = mul(a, g)) {
      ex[i] = ex[i + q_ - 1] = static_cast<std::uint32_t>(a);
      lg[a] = static_cast<std::uint32_t>(i);
    }
    impl->log = std::move(lg);
    impl->exp = std::move(ex);
  }
}

std::string Field::modulus_string() const { return poly_to_string(modulus_); }

const fq_nmod_ctx_struct* Field::fq_ctx() const noexcept { return impl_ ? impl_->ctx : nullptr; }

void Field::to_fq(fq_nmod_t out, std::uint64_t v) const {
  nmod_poly_zero(out);
  for (slong i = 0; v; ++i, v /= p_) nmod_poly_set_coeff_ui(out, i, v % p_);
}

std::uint64_t Field::from_fq(const fq_nmod_t x) const {
  std::uint64_t v = 0;
  for (slong i = x->length - 1; i >= 0; --i) v = v * p_ + x->coeffs[i];
  return v;
}

std::uint64_t Field::add(std::uint64_t a, std::uint64_t b) const noexcept {
  if (k_ == 1) return nmod_add(a, b, mod_);
  if (p_ == 2) return a ^ b;
  std::uint64_t r = 0, w = 1;
  for (; a || b; a /= p_, b /= p_, w *= p_) r += w * nmod_add(a % p_, b % p_, mod_);
  return r;
}

std::uint64_t Field::neg(std::uint64_t a) const noexcept {
  if (k_ == 1) return nmod_neg(a, mod_);
  if (p_ == 2) return a;
  std::uint64_t r = 0, w = 1;
  for (; a; a /= p_, w *= p_) r += w * nmod_neg(a % p_, mod_);
  return r;
}

std::uint64_t Field::sub(std::uint64_t a, std::uint64_t b) const noexcept { return add(a, neg(b)); }

std::uint64_t Field::mul(std::uint64_t a, std::uint64_t b) const {
  if (k_ == 1) return nmod_mul(a, b, mod_);
  if (a == 0 || b == 0) return 0;
  if (!impl_->exp.empty()) return impl_->exp[impl_->log[a] + impl_->log[b]];
  fq_nmod_t x, y;
  fq_nmod_init(x, impl_->ctx);
  fq_nmod_init(y, impl_->ctx);
  to_fq(x, a);
  to_fq(y, b);
  fq_nmod_mul(x, x, y, impl_->ctx);
  std::uint64_t r = from_fq(x);
  fq_nmod_clear(x, impl_->ctx);
  fq_nmod_clear(y, impl_->ctx);
  return r;
}

std::uint64_t Field::inv(std::uint64_t a) const {
  if (a == 0) throw std::domain_error("field: inverse of zero");
  if (k_ == 1) return nmod_inv(a, mod_);
  if (!impl_->exp.empty()) return impl_->exp[(q_ - 1 - impl_->log[a]) % (q_ - 1)];
  fq_nmod_t x;
  fq_nmod_init(x, impl_->ctx);
  to_fq(x, a);
  fq_nmod_inv(x, x, impl_->ctx);
  std::uint64_t r = from_fq(x);
  fq_nmod_clear(x, impl_->ctx);
  return r;
}

}  // namespace lfsr
