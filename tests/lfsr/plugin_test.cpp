// Loads the built lfsr plugin with dlopen, as a worker would, and runs its
// guarded analyses: result fields and order, invalid_params errors, and the
// setup state (one factor cache per worker that tasks teach).
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <lfsr/factor_cache.hpp>
#include <mathpool/plugin.hpp>

using mathpool::ErrorKind;
using mathpool::Value;

namespace {

class LfsrPlugin : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    handle_ = dlopen(LFSR_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(handle_, nullptr) << dlerror();
    auto entry = reinterpret_cast<const mathpool::PluginDescriptor* (*)()>(dlsym(handle_, "mathpool_plugin_entry"));
    ASSERT_NE(entry, nullptr);
    descriptor_ = entry();
    ASSERT_EQ(descriptor_->api_version, mathpool::kPluginApiVersion);
    analyses_ = new std::vector<mathpool::GuardedAnalysis>;
    std::string error;
    ASSERT_TRUE(descriptor_->declare(analyses_, &error)) << error;
    states_ = new std::vector<std::any>;
    for (auto& a : *analyses_) {
      mathpool::TaskError failure;
      states_->push_back(a.setup ? a.setup(&failure) : std::any());
      ASSERT_TRUE(states_->back().has_value()) << failure.message;
    }
  }
  // The plugin stays loaded: objects it made must not outlive it.

  static mathpool::Outcome run(const std::string& name, const Value& params) {
    for (std::size_t i = 0; i < analyses_->size(); ++i)
      if ((*analyses_)[i].doc.name == name) return (*analyses_)[i].run(params, (*states_)[i]);
    ADD_FAILURE() << "no analysis " << name;
    return {};
  }
  static Value ok(const std::string& name, const Value& params) {
    auto o = run(name, params);
    EXPECT_TRUE(o.ok) << o.error.message;
    return o.result;
  }
  static void invalid(const std::string& name, const Value& params, const std::string& param) {
    auto o = run(name, params);
    EXPECT_FALSE(o.ok) << params.dump();
    EXPECT_EQ(o.error.kind, ErrorKind::invalid_params) << o.error.message;
    EXPECT_NE(o.error.message.find(param), std::string::npos) << o.error.message;
  }

  static inline void* handle_ = nullptr;
  static inline const mathpool::PluginDescriptor* descriptor_ = nullptr;
  static inline std::vector<mathpool::GuardedAnalysis>* analyses_ = nullptr;
  static inline std::vector<std::any>* states_ = nullptr;
};

}  // namespace

TEST_F(LfsrPlugin, DeclaresFourDocumentedAnalyses) {
  EXPECT_STREQ(descriptor_->name, "lfsr");
  std::vector<std::string> names;
  for (auto& a : *analyses_) {
    names.push_back(a.doc.name);
    EXPECT_FALSE(a.doc.description.empty());
    EXPECT_FALSE(a.doc.params.empty());
    EXPECT_FALSE(a.doc.results.empty());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"lfsr.cycles", "lfsr.polynomial", "lfsr.sequence", "lfsr.synthesis"}));
}

TEST_F(LfsrPlugin, CyclesAlgebraicResultShape) {
  const Value r = ok("lfsr.cycles", {{"field", 2}, {"coefficients", {1, 0, 1, 0}}});
  std::vector<std::string> keys;
  for (auto& item : r.items()) keys.push_back(item.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"degree", "field", "states", "characteristic_polynomial", "order",
                                            "cycles", "cycle_count", "periodic_states", "transient_states",
                                            "max_tail", "method"}));
  EXPECT_EQ(r["characteristic_polynomial"], "x^4 + x^2 + 1");
  EXPECT_EQ(r["cycles"], Value::parse(R"([{"length":1,"count":1},{"length":3,"count":1},{"length":6,"count":2}])"));
  EXPECT_EQ(r["order"], 6);
  EXPECT_EQ(r["method"], "algebraic");
}

TEST_F(LfsrPlugin, CyclesEnumerationAndListing) {
  const Value r = ok("lfsr.cycles", {{"field", 2}, {"coefficients", {0, 1, 1}}, {"list_cycles", true}});
  EXPECT_EQ(r["method"], "enumeration");
  EXPECT_EQ(r["max_tail"], 1);
  EXPECT_EQ(r["transient_states"], 4);
  // x^3 + x^2 + x = x (x^2 + x + 1): zero cycle and one 3-cycle.
  EXPECT_EQ(r["cycle_list"], Value::parse(R"([{"length":1,"states":[[0,0,0]]},
      {"length":3,"states":[[1,1,0],[1,0,1],[0,1,1]]}])"));
  const Value a = ok("lfsr.cycles", {{"field", 9}, {"coefficients", {2, 0, 5}}, {"method", "algebraic"}});
  const Value e = ok("lfsr.cycles", {{"field", 9}, {"coefficients", {2, 0, 5}}, {"method", "enumerate"}});
  EXPECT_EQ(a["cycles"], e["cycles"]);
  EXPECT_EQ(a["field_modulus"], "x^2 + 2*x + 2");
}

TEST_F(LfsrPlugin, BigNumbersBecomeBigIntegers) {
  std::vector<int> c(128, 0);
  c[0] = c[1] = c[2] = c[7] = 1;  // x^128 + x^7 + x^2 + x + 1 (primitive)
  const Value r = ok("lfsr.cycles", {{"field", 2}, {"coefficients", c}});
  // Past 64 bits: SDK big integers (records write them as decimal strings).
  ASSERT_TRUE(mathpool::is_big_integer(r["states"])) << r["states"].dump();
  EXPECT_EQ(mathpool::big_integer_text(r["states"]), "340282366920938463463374607431768211456");
  EXPECT_EQ(mathpool::big_integer_text(r["order"]), "340282366920938463463374607431768211455");
  EXPECT_EQ(r["cycles"][0]["length"], 1);
  const Value p = ok("lfsr.polynomial", {{"field", 2}, {"coefficients", c}});
  EXPECT_EQ(p["is_primitive"], true);
}

TEST_F(LfsrPlugin, Polynomial) {
  const Value r = ok("lfsr.polynomial", {{"field", 2}, {"coefficients", {1, 1, 0, 1}}});
  EXPECT_EQ(r, Value::parse(R"({"degree":4,"characteristic_polynomial":"x^4 + x^3 + x + 1",
      "factors":[{"factor":"x + 1","multiplicity":2,"degree":1,"order":1},
                 {"factor":"x^2 + x + 1","multiplicity":1,"degree":2,"order":3}],
      "order":6,"is_irreducible":false,"is_primitive":false})"));
  const Value s = ok("lfsr.polynomial", {{"field", 3}, {"coefficients", {0, 1}}});
  EXPECT_TRUE(s["factors"][0]["order"].is_null());  // the factor x
}

TEST_F(LfsrPlugin, SequenceAndSynthesisRoundTrip) {
  const Value s = ok("lfsr.sequence", {{"field", 2}, {"coefficients", {1, 1, 0, 1}}, {"state", {1, 0, 0, 0}}});
  EXPECT_EQ(s["output"], Value::parse("[1,0,0,0,1,1,1,0]"));
  EXPECT_EQ(s["period"], 6);
  EXPECT_EQ(s["preperiod"], 0);
  const std::vector<int> seq = {1, 1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0};
  const Value b = ok("lfsr.synthesis", {{"field", 2}, {"sequence", seq}, {"profile", true}});
  EXPECT_EQ(b["linear_complexity"], 5);
  EXPECT_EQ(b["profile"].size(), seq.size());
  const Value back = ok("lfsr.sequence", {{"field", 2},
                                          {"coefficients", b["coefficients"]},
                                          {"state", Value(std::vector<int>(seq.begin(), seq.begin() + 5))},
                                          {"length", seq.size()}});
  EXPECT_EQ(back["output"], Value(seq));
  const Value t = ok("lfsr.sequence", {{"field", 2}, {"coefficients", {0, 1}}, {"state", {1, 0}}, {"length", 3}});
  EXPECT_EQ(t["preperiod"], 1);
}

TEST_F(LfsrPlugin, InvalidParams) {
  invalid("lfsr.cycles", {{"field", 6}, {"coefficients", {1}}}, "field");
  invalid("lfsr.cycles", {{"field", "2"}, {"coefficients", {1}}}, "field");
  invalid("lfsr.cycles", {{"coefficients", {1}}}, "field");
  invalid("lfsr.cycles", {{"field", 2}, {"coefficients", Value::array()}}, "coefficients");
  invalid("lfsr.cycles", {{"field", 2}, {"coefficients", {1, 2}}}, "coefficients");
  invalid("lfsr.cycles", {{"field", 4}, {"coefficients", {-1}}}, "coefficients");
  invalid("lfsr.cycles", {{"field", 2}, {"coefficients", {1}}, {"method", "magic"}}, "method");
  invalid("lfsr.cycles", {{"field", 2}, {"coefficients", {1}}, {"colour", 1}}, "colour");
  invalid("lfsr.cycles", {{"field", 2}, {"coefficients", std::vector<int>(48, 1)}, {"method", "enumerate"}}, "method");
  invalid("lfsr.cycles", {{"field", 2}, {"coefficients", std::vector<int>(20, 1)}, {"list_cycles", true}},
          "list_cycles");
  invalid("lfsr.cycles", {{"field", 2}, {"coefficients", {1}}, {"list_cycles", "yes"}}, "list_cycles");
  invalid("lfsr.sequence", {{"field", 2}, {"coefficients", {1, 1}}, {"state", {1}}}, "state");
  invalid("lfsr.sequence", {{"field", 2}, {"coefficients", {1, 1}}, {"state", {1, 0}}, {"length", -1}}, "length");
  invalid("lfsr.synthesis", {{"field", 2}, {"sequence", Value::array()}}, "sequence");
  invalid("lfsr.synthesis", {{"field", 3}, {"sequence", {0, 3}}}, "sequence");
  invalid("lfsr.polynomial", {{"field", 2}, {"coefficients", {1.5}}}, "coefficients");
}

TEST_F(LfsrPlugin, TasksTeachTheWorkersSharedCache) {
  // Every analysis gets the same cache; it starts empty (no precompute) and
  // keeps what a task factored for the next task.
  using Shared = std::shared_ptr<lfsr::FactorCache>;
  const Shared cache = std::any_cast<Shared>((*states_)[0]);
  for (const auto& s : *states_) EXPECT_EQ(std::any_cast<Shared>(s), cache);
  std::vector<int> c(160, 0);
  c[0] = c[2] = c[3] = c[5] = 1;  // x^160 + x^5 + x^3 + x^2 + 1 (primitive)
  EXPECT_EQ(cache->find(2, 160), nullptr);
  const Value first = ok("lfsr.polynomial", {{"field", 2}, {"coefficients", c}});
  EXPECT_EQ(first["is_primitive"], true);
  const lfsr::Factorization* learned = cache->find(2, 160);
  ASSERT_NE(learned, nullptr);
  const std::size_t size = cache->size(), bytes = cache->learned_bytes();
  EXPECT_EQ(ok("lfsr.polynomial", {{"field", 2}, {"coefficients", c}}), first);
  EXPECT_EQ(cache->find(2, 160), learned);
  EXPECT_EQ(cache->size(), size);  // nothing refactored or added
  EXPECT_EQ(cache->learned_bytes(), bytes);
}
