// Built with MATHPOOL_PLUGIN_API_VERSION=999: the worker must refuse it.
#include <mathpool/plugin.hpp>

MATHPOOL_PLUGIN("wrong_api", "1.0.0") {
  mathpool::Analysis a;
  a.name = "wrong_api.echo";
  a.run = [](const mathpool::TaskContext& task) { return task.params().raw(); };
  registry.add(a);
}
