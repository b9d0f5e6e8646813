// Needs a function no library provides: loading it must fail with the name.
#include <mathpool/plugin.hpp>

extern "C" int mathpool_test_function_nobody_defines();

MATHPOOL_PLUGIN("missing_symbol", "1.0.0") {
  mathpool::Analysis a;
  a.name = "missing_symbol.call";
  a.run = [](const mathpool::TaskContext&) {
    return mathpool::Value{{"value", mathpool_test_function_nobody_defines()}};
  };
  registry.add(a);
}
