// For test_attack2_mpi.cpp: rank 0 opens a pool across the ranks, then a
// second one while the first is open, and runs a task on each; the other
// ranks serve. Prints what happened, line by line.
//
//   mpirun -n 3 mpi_two_pools PLUGIN_DIR
#include <iostream>

#include <mathpool/mpi.hpp>
#include <mathpool/pool.hpp>

int main(int argc, char** argv) {
  std::cout << std::unitbuf;
  try {
    mathpool::MpiJob job(argc, argv);
    if (job.rank() != 0) return job.serve();
    mathpool::PoolOptions options;
    options.workers = 1;
    options.default_plugin_paths = false;
    options.plugin_paths.emplace_back(argv[1]);
    mathpool::Pool first(job, options);
    std::cout << "first open\n";
    try {
      mathpool::Pool second(job, options);
      std::cout << "second open\n";
      const mathpool::TaskResult r = second.submit("testkit.pid", mathpool::Value::object()).get();
      std::cout << "second ok " << r.ok() << "\n";
    } catch (const std::exception& e) {
      std::cout << "second refused: " << e.what() << "\n";
    }
    const mathpool::TaskResult r = first.submit("testkit.pid", mathpool::Value::object()).get();
    std::cout << "first ok " << r.ok() << "\n";
  } catch (const std::exception& e) {
    std::cout << "error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
