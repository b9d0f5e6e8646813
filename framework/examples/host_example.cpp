// A host program: builds a pool, maps an analysis over parameter sets, submits
// one task for a future, reads statistics and shuts down.
//
//   host_example [PLUGIN_FILE_OR_DIR...]   (default: the installed plugins)
#include <iostream>

#include <mathpool/pool.hpp>

int main(int argc, char** argv) {
  mathpool::PoolOptions options;
  options.workers = 2;
  if (argc > 1) {
    options.default_plugin_paths = false;
    for (int i = 1; i < argc; ++i) options.plugin_paths.emplace_back(argv[i]);
  }
  try {
    mathpool::Pool pool(options);

    std::vector<mathpool::Value> params;
    for (int i = 1; i <= 5; ++i) params.push_back({{"values", {i, i, i}}, {"offset", 100}});
    int failures = 0;
    for (const mathpool::TaskResult& r : pool.map("example.sum", params)) {
      if (r.ok()) std::cout << "sum " << r.result.at("sum") << " on worker " << r.worker << '\n';
      else ++failures, std::cout << r.status() << ": " << r.error->message << '\n';
    }

    std::future<mathpool::TaskResult> one = pool.submit("example.echo", {{"hello", "pool"}});
    std::cout << "echo " << one.get().result.dump() << '\n';

    const mathpool::PoolStats stats = pool.stats();
    std::cout << "tasks ok " << stats.tasks_ok << ", failed " << stats.tasks_failed << '\n';
    pool.shutdown();
    return failures == 0 && stats.tasks_ok == 6 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "host_example: " << e.what() << '\n';
    return 2;
  }
}
