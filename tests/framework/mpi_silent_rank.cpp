// For test_mpi.cpp: a host program that never looks at MpiJob::lost(). Rank 0
// opens a pool across the ranks with a 2 s node timeout and maps tasks over
// it; rank 2 stops itself (SIGSTOP) once the pool is open. The map cannot
// finish, so the pool itself must end the job (MPI_Abort, exit 3) soon after
// the loss. Prints what happened, line by line.
//
// A stopped process ends only once it runs again, so before it stops, rank 2
// starts a resumer that sends it SIGCONT 25 s later, after the pool has
// ended the job (12 s at most): whatever mpirun sent it meanwhile then takes
// effect, and a loaded machine cannot leave the job waiting on a stopped rank.
//
//   mpirun -n 3 mpi_silent_rank PLUGIN_DIR SIGNAL_FILE
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include <mathpool/mpi.hpp>
#include <mathpool/pool.hpp>

namespace {

// sh -c 'sleep 25; kill -CONT PID', its standard streams on /dev/null (not
// the rank's, which mpirun reads to their end).
void start_resumer(pid_t rank) {
  const std::string script = "sleep 25; kill -CONT " + std::to_string(rank);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  for (int fd = 0; fd < 3; ++fd) posix_spawn_file_actions_addopen(&files, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
  const char* args[] = {"/bin/sh", "-c", script.c_str(), nullptr};
  pid_t pid = 0;
  posix_spawn(&pid, "/bin/sh", &files, nullptr, const_cast<char* const*>(args), environ);
  posix_spawn_file_actions_destroy(&files);
}

}  // namespace

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
        start_resumer(::getpid());
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
