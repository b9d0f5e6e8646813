// Declares example.echo again: loading it beside the example plugin must fail.
#include <mathpool/plugin.hpp>

MATHPOOL_PLUGIN("duplicate", "1.0.0") {
  mathpool::Analysis a;
  a.name = "example.echo";
  a.run = [](const mathpool::TaskContext& task) { return task.params().raw(); };
  registry.add(a);
}
