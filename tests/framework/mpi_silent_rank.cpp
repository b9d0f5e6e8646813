// For test_mpi.cpp: a host program that never looks at MpiJob::lost(). Rank 0
// opens a pool across the ranks with a 2 s node timeout and maps tasks over
// it; rank 2 stops itself (SIGSTOP) once the pool is open. The map cannot
// finish, so the pool itself must end the job (MPI_Abort, exit 3) soon after
// the loss. Prints what happened, line by line.
//
//   mpirun -n 3 mpi_silent_rank PLUGIN_DIR SIGNAL_FILE
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <mathpool/mpi.hpp>
#include <mathpool/pool.hpp>

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  std::cout << std::unitbuf;
  if (argc < 3) return 2;
  const std::filesystem::path signal_file = argv[2];
  try {
    mathpool::MpiJob job(argc, argv);
    if (job.rank() == 2) {
      std::thread([signal_file] {
        while (!std::filesystem::exists(signal_file)) std::this_thread::sleep_for(10ms);
        std::this_thread::sleep_for(300ms);  // while tasks run
        ::raise(SIGSTOP);
      }).detach();
    }
    if (job.rank() != 0) return job.serve();
    job.set_node_timeout(2s);
    mathpool::PoolOptions options;
    options.workers = 1;
    options.default_plugin_paths = false;
    options.plugin_paths.emplace_back(argv[1]);
    mathpool::Pool pool(job, options);
    std::cout << "pool open\n";
    std::ofstream(signal_file) << "open\n";
    std::vector<mathpool::Value> params(100, mathpool::Value{{"ms", 100}});
    const auto results = pool.map("testkit.sleep", params);
    std::cout << "map returned " << results.size() << "\n";
  } catch (const std::exception& e) {
    std::cout << "error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
