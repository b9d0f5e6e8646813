#include "analyses.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <functional>
#include <optional>

#include "convert.hpp"

namespace lfsr_plugin {

using mathpool::InvalidParams;
using mathpool::Value;

std::any make_shared_cache() {
  // One cache per worker process, shared by the four analyses' setups. It
  // starts empty: factoring on first need costs microseconds for the small
  // degrees of a typical one-shot run, where precomputing every binary
  // register up to degree 128 cost about 0.1 s per worker start.
  static const SharedCache cache = std::make_shared<lfsr::FactorCache>(kLearnBudgetBytes);
  return std::any(cache);
}

std::uint64_t enumeration_memory_limit() {
  std::uint64_t limit = std::uint64_t{1} << 30;
  rlimit rl{};
  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    limit = std::min<std::uint64_t>(limit, rl.rlim_cur / 2);
  return limit;
}

namespace {

lfsr::FactorCache task_cache(const mathpool::TaskContext& task) {
  // A task layer that teaches the worker's cache: factorisations are facts,
  // so later tasks reuse them; the layer only keeps what the budget refuses.
  return lfsr::FactorCache::teaching(task.setup_state<SharedCache>());
}

void add_modulus(Value& out, const lfsr::Field& field) {
  if (!field.is_prime()) out["field_modulus"] = field.modulus_string();
}

Value cycles_json(const lfsr::CycleStructure& cs) {
  Value list = Value::array();
  for (const auto& c : cs.cycles) list.push_back(Value{{"length", big(c.length)}, {"count", big(c.count)}});
  return list;
}

}  // namespace

Value run_cycles(const mathpool::TaskContext& task) {
  const auto& params = task.params();
  check_known(params, {"field", "coefficients", "method", "list_cycles"});
  const lfsr::Field field = field_param(params);
  const auto coeffs = elements_param(params, "coefficients", field);
  const std::string method = params.string("method", "auto");
  if (method != "auto" && method != "algebraic" && method != "enumerate")
    throw InvalidParams("parameter 'method': must be auto, algebraic or enumerate, got '" + method + "'");
  const bool list = params.boolean("list_cycles", false);
  if (list && method == "algebraic")
    throw InvalidParams("parameter 'list_cycles': listing states needs enumeration; use method auto or enumerate");
  const bool enumerate = method == "enumerate" || list;
  const auto d = static_cast<unsigned>(coeffs.size());
  const bool singular = coeffs[0] == 0;

  lfsr::CycleStructure cs;
  std::vector<lfsr::ListedCycle> listed;
  if (enumerate) {
    const auto bytes = lfsr::enumeration_memory_bytes(field.q(), d, singular, list);
    const std::uint64_t limit = enumeration_memory_limit();
    if (!bytes || *bytes > limit)
      throw InvalidParams("parameter 'method': enumerating " + std::to_string(field.q()) + "^" + std::to_string(d) +
                          " states needs more memory than the worker allows (" + std::to_string(limit >> 20) +
                          " MiB); use method algebraic");
    if (list && lfsr::BigInt::pow(field.q(), d) > lfsr::BigInt(kMaxListedStates))
      throw InvalidParams("parameter 'list_cycles': only for state spaces of at most " +
                          std::to_string(kMaxListedStates) + " states");
    auto e = translating([&] { return lfsr::enumerate_cycles(field, coeffs, list); });
    cs = std::move(e.structure);
    listed = std::move(e.cycle_list);
  } else {
    lfsr::FactorCache cache = task_cache(task);
    cs = translating([&] { return lfsr::cycle_structure(field, coeffs, cache); });
  }

  Value out;
  out["degree"] = d;
  out["field"] = field.q();
  out["states"] = big(cs.states);
  out["characteristic_polynomial"] = lfsr::poly_to_string(cs.characteristic_polynomial);
  out["order"] = big(cs.order);
  out["cycles"] = cycles_json(cs);
  out["cycle_count"] = big(cs.cycle_count);
  out["periodic_states"] = big(cs.periodic_states);
  out["transient_states"] = big(cs.transient_states);
  out["max_tail"] = cs.max_tail;
  out["method"] = enumerate ? "enumeration" : "algebraic";
  if (list) {
    Value cl = Value::array();
    for (const auto& c : listed) {
      Value states = Value::array();
      for (auto idx : c.states) states.push_back(elements(lfsr::state_of_index(field.q(), d, idx)));
      cl.push_back(Value{{"length", c.length}, {"states", std::move(states)}});
    }
    out["cycle_list"] = std::move(cl);
  }
  add_modulus(out, field);
  return out;
}

Value run_polynomial(const mathpool::TaskContext& task) {
  const auto& params = task.params();
  check_known(params, {"field", "coefficients"});
  const lfsr::Field field = field_param(params);
  const auto coeffs = elements_param(params, "coefficients", field);
  lfsr::FactorCache cache = task_cache(task);
  const auto info = translating(
      [&] { return lfsr::analyse_polynomial(field, lfsr::characteristic_polynomial(field, coeffs), cache); });
  Value factors = Value::array();
  for (const auto& f : info.factors)
    factors.push_back(Value{{"factor", lfsr::poly_to_string(f.factor)},
                            {"multiplicity", f.multiplicity},
                            {"degree", f.factor.size() - 1},
                            {"order", f.order ? big(*f.order) : Value(nullptr)}});
  Value out;
  out["degree"] = coeffs.size();
  out["characteristic_polynomial"] = lfsr::poly_to_string(info.polynomial);
  out["factors"] = std::move(factors);
  out["order"] = big(info.order);
  out["is_irreducible"] = info.irreducible;
  out["is_primitive"] = info.primitive;
  add_modulus(out, field);
  return out;
}

Value run_sequence(const mathpool::TaskContext& task) {
  constexpr std::int64_t kMaxLength = 10'000'000;
  const auto& params = task.params();
  check_known(params, {"field", "coefficients", "state", "length"});
  const lfsr::Field field = field_param(params);
  const auto coeffs = elements_param(params, "coefficients", field);
  const auto state = elements_param(params, "state", field);
  const std::int64_t length = params.integer("length", 2 * static_cast<std::int64_t>(coeffs.size()));
  if (length < 0 || length > kMaxLength)
    throw InvalidParams("parameter 'length': must be between 0 and " + std::to_string(kMaxLength) + ", got " +
                        std::to_string(length));
  lfsr::FactorCache cache = task_cache(task);
  return translating([&] {
    const lfsr::Register reg(field, coeffs);
    const auto output = reg.output(state, static_cast<std::size_t>(length));
    const auto sp = lfsr::state_period(reg, state, cache);
    Value out;
    out["output"] = elements(output);
    out["period"] = big(sp.period);
    out["preperiod"] = sp.preperiod;
    add_modulus(out, field);
    return out;
  });
}

Value run_synthesis(const mathpool::TaskContext& task) {
  const auto& params = task.params();
  check_known(params, {"field", "sequence", "profile"});
  const lfsr::Field field = field_param(params);
  const auto seq = elements_param(params, "sequence", field);
  const bool profile = params.boolean("profile", false);
  const auto syn = translating([&] { return lfsr::berlekamp_massey(field, seq, profile); });
  Value out;
  out["linear_complexity"] = syn.linear_complexity;
  out["coefficients"] = elements(syn.coefficients);
  out["connection_polynomial"] = lfsr::poly_to_string(syn.connection_polynomial);
  out["characteristic_polynomial"] = lfsr::poly_to_string(syn.characteristic_polynomial);
  out["unique"] = syn.unique;
  if (profile) {
    Value p = Value::array();
    for (auto l : syn.profile) p.push_back(l);
    out["profile"] = std::move(p);
  }
  add_modulus(out, field);
  return out;
}

}  // namespace lfsr_plugin

// ---- checks (Analysis::check): the parameter checks each run does first,
// every one that can be made, without the setup or any computation.
namespace lfsr_plugin {
namespace {

using Problems = std::vector<mathpool::ParamProblem>;

// Runs one check; an InvalidParams becomes a problem of the parameter its
// message names ("parameter 'x': ..."). Returns whether it passed.
bool step(Problems& problems, const std::function<void()>& check) {
  try {
    check();
    return true;
  } catch (const mathpool::Error& e) {
    const std::string message = e.what();
    std::string param;
    if (const auto at = message.find("parameter '"); at != std::string::npos) {
      const auto begin = at + 11;
      param = message.substr(begin, message.find('\'', begin) - begin);
    }
    problems.push_back({param, message});
    return false;
  }
}

// The checks shared by every analysis: known keys, the field, and each
// element list of `lists`, over that field.
Problems field_and_lists(const Value& raw, const std::vector<std::string>& known, const std::vector<const char*>& lists) {
  Problems problems;
  const mathpool::Params params(raw);
  step(problems, [&] { check_known(params, known); });
  std::optional<lfsr::Field> field;
  step(problems, [&] { field.emplace(field_param(params)); });
  if (field)
    for (const char* list : lists) step(problems, [&] { elements_param(params, list, *field); });
  return problems;
}

}  // namespace

std::vector<mathpool::ParamProblem> check_cycles(const Value& raw) {
  Problems problems = field_and_lists(raw, {"field", "coefficients", "method", "list_cycles"}, {"coefficients"});
  const mathpool::Params params(raw);
  step(problems, [&] {
    const std::string method = params.string("method", "auto");
    if (method != "auto" && method != "algebraic" && method != "enumerate")
      throw InvalidParams("parameter 'method': must be auto, algebraic or enumerate, got '" + method + "'");
    if (params.boolean("list_cycles", false) && method == "algebraic")
      throw InvalidParams("parameter 'list_cycles': listing states needs enumeration; use method auto or enumerate");
  });
  return problems;
}

std::vector<mathpool::ParamProblem> check_polynomial(const Value& raw) {
  return field_and_lists(raw, {"field", "coefficients"}, {"coefficients"});
}

std::vector<mathpool::ParamProblem> check_sequence(const Value& raw) {
  Problems problems = field_and_lists(raw, {"field", "coefficients", "state", "length"}, {"coefficients", "state"});
  const mathpool::Params params(raw);
  step(problems, [&] {
    const std::int64_t length = params.integer("length", 0);
    if (length < 0 || length > 10'000'000)
      throw InvalidParams("parameter 'length': must be between 0 and 10000000, got " + std::to_string(length));
  });
  return problems;
}

std::vector<mathpool::ParamProblem> check_synthesis(const Value& raw) {
  Problems problems = field_and_lists(raw, {"field", "sequence", "profile"}, {"sequence"});
  const mathpool::Params params(raw);
  step(problems, [&] { params.boolean("profile", false); });
  return problems;
}

}  // namespace lfsr_plugin
