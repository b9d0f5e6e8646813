// The template for plugin authors: one plugin file, one entry point, analyses
// declared with their documentation. Build it with mathpool_add_plugin().
#include <mathpool/plugin.hpp>

MATHPOOL_PLUGIN("example", "1.0.0") {
  // example.echo returns its parameters unchanged. open_params: any parameter
  // is accepted, so it is also the fixture for measuring pool overhead.
  registry.add({
      .name = "example.echo",
      .version = "1.0.0",
      .description = "Returns its parameters unchanged",
      .params = {},
      .results = {{"*", "any", "each parameter, as given"}},
      .open_params = true,
      .setup = nullptr,
      .run = [](const mathpool::TaskContext& task) { return task.params().raw(); },
  });

  // example.sum shows documented parameters, typed accessors, defaults and a
  // setup whose result every task of the worker shares read-only.
  registry.add({
      .name = "example.sum",
      .version = "1.0.0",
      .description = "Adds a list of integers to an offset",
      .params = {{"values", "list of integers", "", "the numbers to add"},
                 {"offset", "integer", "0", "added to the sum"}},
      .results = {{"sum", "integer", "offset + the sum of values"},
                  {"count", "integer", "how many values were added"}},
      .open_params = false,
      .setup = [] { return std::any(std::int64_t{0}); },
      .run =
          [](const mathpool::TaskContext& task) {
            const auto& params = task.params();
            std::int64_t sum = params.integer("offset", task.setup_state<std::int64_t>());
            const auto values = params.integers("values");
            for (std::int64_t v : values) sum += v;
            return mathpool::Value{{"sum", sum}, {"count", values.size()}};
          },
  });
}
