// A host program across the ranks of an MPI job: rank 0 owns a pool whose
// workers run on every rank's machine; the other ranks serve as node agents.
// Counts the primitive registers of degree 10 over GF(2) (60 of the 512 with
// c0 = 1), with map, a stream and a single submit.
//
//   mpirun -n 3 mpi_host [PLUGIN_FILE_OR_DIR...]   (default: the installed plugins)
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
#include <map>

#include <mathpool/mpi.hpp>
#include <mathpool/pool.hpp>

namespace {

mathpool::Value register_params(int bits) {
  mathpool::Value coefficients = mathpool::Value::array({1});  // c0 = 1: nonsingular
  for (int i = 0; i < 9; ++i) coefficients.push_back((bits >> i) & 1);
  return {{"field", 2}, {"coefficients", coefficients}};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    mathpool::MpiJob job(argc, argv);
    if (job.rank() != 0) return job.serve();

    mathpool::PoolOptions options;
    options.workers = 2;  // on each machine
    if (argc > 1) {
      options.default_plugin_paths = false;
      for (int i = 1; i < argc; ++i) options.plugin_paths.emplace_back(argv[i]);
    }
    mathpool::Pool pool(job, options);
    std::cout << "workers across " << job.size() << " ranks: " << pool.size() << '\n';

    std::vector<mathpool::Value> params;
    for (int bits = 0; bits < 512; ++bits) params.push_back(register_params(bits));
    int primitive = 0, failed = 0;
    std::map<std::string, int> per_node;
    for (const mathpool::TaskResult& r : pool.map("lfsr.polynomial", params)) {
      if (!r.ok()) ++failed;
      else if (r.result.at("is_primitive").get<bool>()) ++primitive;
      ++per_node[r.node];
    }
    std::cout << "map: " << primitive << " primitive of 512, " << failed << " failed\n";

    mathpool::TaskStream stream(pool, 64);
    int streamed = 0;
    for (int bits = 0; bits < 512; ++bits) {
      if (stream.full()) streamed += stream.next()->result.at("is_primitive").get<bool>();
      stream.push("lfsr.polynomial", register_params(bits));
    }
    while (auto r = stream.next()) streamed += r->result.at("is_primitive").get<bool>();
    std::cout << "stream: " << streamed << " primitive\n";

    const mathpool::TaskResult one = pool.submit("lfsr.polynomial", register_params(0b000000100)).get();
    std::cout << "submit: x^10 + x^3 + 1 primitive " << std::boolalpha
              << one.result.at("is_primitive").get<bool>() << " on node " << one.node << '\n';
    // A forked child cannot use the pool (its threads stayed here): its
    // submit fails at once instead of waiting forever.
    if (const pid_t child = fork(); child == 0) {
      const mathpool::TaskResult refused = pool.submit("lfsr.polynomial", register_params(0)).get();
      _exit(refused.ok() ? 1 : 0);
    } else {
      int status = 0;
      waitpid(child, &status, 0);
      std::cout << "forked child refused: " << (WIFEXITED(status) && WEXITSTATUS(status) == 0) << '\n';
    }
    for (const auto& [node, tasks] : per_node) std::cout << "node " << node << ": " << tasks << " tasks of the map\n";
    long done = 0;
    for (const mathpool::NodeStats& n : pool.stats().nodes) {
      std::cout << "rank " << n.rank << " (" << n.node << "): " << n.workers << " workers, " << n.tasks_done
                << " tasks done\n";
      done += n.tasks_done;
    }
    std::cout << "tasks done over all ranks: " << done << '\n';
    return failed == 0 && primitive == 60 && streamed == 60 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "mpi_host: " << e.what() << '\n';
    return 2;
  }
}
