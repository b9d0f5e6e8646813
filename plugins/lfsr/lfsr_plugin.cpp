// The lfsr plugin: linear feedback shift registers over GF(q) (mathematics in
// the lfsr library). Every analysis shares one setup: the worker's cache of
// q^m - 1 factorisations, empty at start and filled as tasks need entries.
#include <mathpool/plugin.hpp>

#include "analyses.hpp"

namespace {

using mathpool::FieldDoc;
using mathpool::ParamDoc;

const ParamDoc kField{"field", "integer", "",
                      "q, a prime or a prime power (elements of GF(p^k) are integers 0 <= v < q whose base-p "
                      "digits, lowest first, are coefficients in the generator)"};
const ParamDoc kCoefficients{"coefficients", "list of integers", "",
                             "[c0, ..., c(d-1)]: s(n+d) = c0 s(n) + ... + c(d-1) s(n+d-1) (lfsr-seq's convention)"};
const FieldDoc kModulus{"field_modulus", "string",
                        "only when q = p^k, k > 1: the defining polynomial of GF(q) over GF(p) (Conway where "
                        "FLINT has one, else the least monic irreducible)"};

}  // namespace

MATHPOOL_PLUGIN("lfsr", "1.0.0") {
  using lfsr_plugin::make_shared_cache;

  registry.add({
      .name = "lfsr.cycles",
      .version = "1.0.0",
      .description = "Cycle structure of a register's whole state space (by algebra or enumeration)",
      .params = {kField, kCoefficients,
                 {"method", "string", "auto",
                  "auto | algebraic | enumerate: algebraic factors the characteristic polynomial (any degree); "
                  "enumerate visits every state (small spaces; refused beyond the worker's memory)"},
                 {"list_cycles", "bool", "false",
                  "list each cycle's states (enumeration; at most 65536 states)"}},
      .results = {{"degree", "integer", "d"},
                  {"field", "integer", "q"},
                  {"states", "integer", "q^d"},
                  {"characteristic_polynomial", "string", "x^d - c(d-1) x^(d-1) - ... - c0"},
                  {"order", "integer", "the period of the register: lcm of all cycle lengths"},
                  {"cycles", "list of {length, count}", "by ascending length, the zero state's cycle included"},
                  {"cycle_count", "integer", "number of cycles"},
                  {"periodic_states", "integer", "states on cycles"},
                  {"transient_states", "integer", "states off the cycles (only when c0 = 0)"},
                  {"max_tail", "integer", "longest path from a state into a cycle (0 when c0 != 0)"},
                  {"method", "string", "algebraic or enumeration"},
                  {"cycle_list", "list of {length, states}",
                   "with list_cycles: each cycle from its least state (index s0 + s1 q + ...), "
                   "cycles ordered by that index"},
                  kModulus},
      .open_params = false,
      .setup = make_shared_cache,
      .run = lfsr_plugin::run_cycles,
      .check = lfsr_plugin::check_cycles,
  });

  registry.add({
      .name = "lfsr.polynomial",
      .version = "1.0.0",
      .description = "Characteristic polynomial: factors, orders, irreducibility, primitivity",
      .params = {kField, kCoefficients},
      .results = {{"degree", "integer", "d"},
                  {"characteristic_polynomial", "string", "x^d - c(d-1) x^(d-1) - ... - c0"},
                  {"factors", "list of {factor, multiplicity, degree, order}",
                   "monic irreducible factors by degree; order of the irreducible factor (null for x)"},
                  {"order", "integer", "order of the whole polynomial, the x part removed"},
                  {"is_irreducible", "bool", "the polynomial is irreducible"},
                  {"is_primitive", "bool", "irreducible, f(0) != 0 and order q^d - 1"},
                  kModulus},
      .open_params = false,
      .setup = make_shared_cache,
      .run = lfsr_plugin::run_polynomial,
      .check = lfsr_plugin::check_polynomial,
  });

  registry.add({
      .name = "lfsr.sequence",
      .version = "1.0.0",
      .description = "Output of one register from one state, with its period and pre-period",
      .params = {kField, kCoefficients,
                 {"state", "list of integers", "", "[s0, ..., s(d-1)]: the initial state"},
                 {"length", "integer", "2d", "how many output symbols (at most 10^7)"}},
      .results = {{"output", "list of integers", "s(0), s(1), ..., s(length-1)"},
                  {"period", "integer", "period of the sequence (without walking it)"},
                  {"preperiod", "integer", "steps before the sequence becomes periodic"},
                  kModulus},
      .open_params = false,
      .setup = make_shared_cache,
      .run = lfsr_plugin::run_sequence,
      .check = lfsr_plugin::check_sequence,
  });

  registry.add({
      .name = "lfsr.synthesis",
      .version = "1.0.0",
      .description = "Shortest register generating a sequence (Berlekamp-Massey)",
      .params = {kField,
                 {"sequence", "list of integers", "", "the sequence s(0), ..., s(n-1)"},
                 {"profile", "bool", "false", "also return the linear complexity profile L(1), ..., L(n)"}},
      .results = {{"linear_complexity", "integer", "L"},
                  {"coefficients", "list of integers",
                   "[c0, ..., c(L-1)] in the convention of lfsr.cycles; lfsr.sequence with the first L "
                   "symbols as state regenerates the input"},
                  {"connection_polynomial", "string", "C(x) = 1 - c(L-1) x - ... - c0 x^L"},
                  {"characteristic_polynomial", "string", "x^L C(1/x)"},
                  {"unique", "bool", "2L <= n: no other register of length L generates the sequence"},
                  {"profile", "list of integers", "with profile: L(1), ..., L(n)"},
                  kModulus},
      .open_params = false,
      .setup = make_shared_cache,
      .run = lfsr_plugin::run_synthesis,
      .check = lfsr_plugin::check_synthesis,
  });
}
