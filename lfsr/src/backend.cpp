#include "backend.hpp"

#include <flint/fq_nmod_poly.h>
#include <flint/fq_nmod_poly_factor.h>
#include <flint/nmod_poly.h>
#include <flint/nmod_poly_factor.h>

namespace lfsr::detail {
namespace {

// RAII holders: FLINT objects never outlive the call that made them.
struct NPoly {
  nmod_poly_t v;
  NPoly(const Field& field, const Poly& f) {
    nmod_poly_init(v, field.p());
    for (std::size_t i = 0; i < f.size(); ++i) nmod_poly_set_coeff_ui(v, i, f[i]);
  }
  explicit NPoly(std::uint64_t p) { nmod_poly_init(v, p); }
  ~NPoly() { nmod_poly_clear(v); }
  NPoly(const NPoly&) = delete;
  NPoly& operator=(const NPoly&) = delete;
};

struct FqElem {
  const Field& field;
  fq_nmod_t v;
  explicit FqElem(const Field& f) : field(f) { fq_nmod_init(v, field.fq_ctx()); }
  ~FqElem() { fq_nmod_clear(v, field.fq_ctx()); }
  FqElem(const FqElem&) = delete;
  FqElem& operator=(const FqElem&) = delete;
};

struct FqPoly {
  const Field& field;
  fq_nmod_poly_t v;
  explicit FqPoly(const Field& f) : field(f) { fq_nmod_poly_init(v, field.fq_ctx()); }
  FqPoly(const Field& f, const Poly& coeffs) : FqPoly(f) {
    FqElem c(field);
    for (std::size_t i = 0; i < coeffs.size(); ++i) {
      field.to_fq(c.v, coeffs[i]);
      fq_nmod_poly_set_coeff(v, i, c.v, field.fq_ctx());
    }
  }
  ~FqPoly() { fq_nmod_poly_clear(v, field.fq_ctx()); }
  FqPoly(const FqPoly&) = delete;
  FqPoly& operator=(const FqPoly&) = delete;
  Poly get() const {
    Poly out(fq_nmod_poly_length(v, field.fq_ctx()));
    FqElem c(field);
    for (std::size_t i = 0; i < out.size(); ++i) {
      fq_nmod_poly_get_coeff(c.v, v, i, field.fq_ctx());
      out[i] = field.from_fq(c.v);
    }
    return out;
  }
};

Poly from_nmod(const nmod_poly_t f) { return Poly(f->coeffs, f->coeffs + f->length); }

}  // namespace

std::vector<FactorPower> flint_factor(const Field& field, const Poly& f) {
  std::vector<FactorPower> out;
  if (field.is_prime()) {
    NPoly g(field, f);
    nmod_poly_factor_t fac;
    nmod_poly_factor_init(fac);
    nmod_poly_factor(fac, g.v);
    for (slong i = 0; i < fac->num; ++i)
      out.push_back({from_nmod(fac->p + i), static_cast<unsigned>(fac->exp[i])});
    nmod_poly_factor_clear(fac);
    return out;
  }
  FqPoly g(field, f);
  FqElem lead(field);
  fq_nmod_poly_factor_t fac;
  fq_nmod_poly_factor_init(fac, field.fq_ctx());
  fq_nmod_poly_factor(fac, lead.v, g.v, field.fq_ctx());
  for (slong i = 0; i < fac->num; ++i) {
    FqPoly factor(field);
    fq_nmod_poly_set(factor.v, fac->poly + i, field.fq_ctx());
    out.push_back({factor.get(), static_cast<unsigned>(fac->exp[i])});
  }
  fq_nmod_poly_factor_clear(fac, field.fq_ctx());
  return out;
}

bool flint_is_irreducible(const Field& field, const Poly& f) {
  if (field.is_prime()) {
    NPoly g(field, f);
    return nmod_poly_is_irreducible(g.v) != 0;
  }
  FqPoly g(field, f);
  return fq_nmod_poly_is_irreducible(g.v, field.fq_ctx()) != 0;
}

struct XPowTester::Impl {
  virtual ~Impl() = default;
  virtual bool test(const fmpz_t e) = 0;
};

namespace {

struct NmodTester final : XPowTester::Impl {
  NPoly g, ginv, res;
  NmodTester(const Field& field, const Poly& p) : g(field, p), ginv(field.p()), res(field.p()) {
    nmod_poly_reverse(ginv.v, g.v, g.v->length);
    nmod_poly_inv_series(ginv.v, ginv.v, g.v->length);
  }
  bool test(const fmpz_t e) override {
    nmod_poly_powmod_x_fmpz_preinv(res.v, const_cast<fmpz*>(e), g.v, ginv.v);
    return nmod_poly_is_one(res.v) != 0;
  }
};

struct FqTester final : XPowTester::Impl {
  FqPoly g, ginv, res;
  FqTester(const Field& field, const Poly& p) : g(field, p), ginv(field), res(field) {
    slong len = fq_nmod_poly_length(g.v, field.fq_ctx());
    fq_nmod_poly_reverse(ginv.v, g.v, len, field.fq_ctx());
    fq_nmod_poly_inv_series_newton(ginv.v, ginv.v, len, field.fq_ctx());
  }
  bool test(const fmpz_t e) override {
    fq_nmod_poly_powmod_x_fmpz_preinv(res.v, e, g.v, ginv.v, g.field.fq_ctx());
    return fq_nmod_poly_is_one(res.v, g.field.fq_ctx()) != 0;
  }
};

}  // namespace

XPowTester::XPowTester(const Field& field, const Poly& g)
    : impl_(field.is_prime() ? static_cast<Impl*>(new NmodTester(field, g))
                             : static_cast<Impl*>(new FqTester(field, g))) {}
XPowTester::~XPowTester() { delete impl_; }
bool XPowTester::x_pow_is_one(const fmpz_t e) { return impl_->test(e); }

}  // namespace lfsr::detail
