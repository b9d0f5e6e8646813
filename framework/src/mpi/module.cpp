// module.cpp: the MPI module's entry point (see backend.hpp): joining and
// leaving the MPI job, and the pool across its ranks.
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include <fmt/format.h>

#include "agent.hpp"
#include "backend.hpp"
#include "job.hpp"
#include "mathpool/mpi.hpp"
#include "router.hpp"

namespace mathpool::mpi_detail {
namespace {

class JobBackend final : public Backend {
 public:
  JobBackend(int* argc, char*** argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) throw Error(ErrorKind::invalid_config, "MPI is initialised already: one MpiJob per process");
    int provided = 0;
    // One thread at a time talks to MPI: the router's while a pool is open.
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
      throw Error(ErrorKind::invalid_config, "MPI cannot start (MPI_Init_thread failed)");
    if (provided < MPI_THREAD_SERIALIZED) {
      MPI_Finalize();
      throw Error(ErrorKind::invalid_config, "this MPI library cannot be used from more than one thread");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &job_.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &job_.size);
    MPI_Comm same_machine;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &same_machine) == MPI_SUCCESS) {
      MPI_Comm_size(same_machine, &job_.local_ranks);
      MPI_Comm_free(&same_machine);
    }
    char host[HOST_NAME_MAX + 1] = {};
    ::gethostname(host, sizeof host - 1);
    job_.node = host;
  }

  ~JobBackend() override {
    // MPI_Finalize would wait for the lost rank forever.
    if (job_.lost()) abort(MpiJob::kExitRankLost);
    if (!job_.finalize) return;
    if (job_.rank == 0) {
      for (int r = 1; r < job_.size; ++r) job_.transport.send(r, Tag::end, {});
      for (int i = 0; i < 5000 && !job_.transport.progress(); ++i) ::usleep(1000);
    }
    MPI_Finalize();
  }

  int rank() const noexcept override { return job_.rank; }
  int size() const noexcept override { return job_.size; }
  const std::string& node() const noexcept override { return job_.node; }
  void abandon() noexcept override { job_.finalize = false; }

  void set_node_timeout(std::chrono::milliseconds timeout) override {
    if (timeout < kLeastNodeTimeout)
      throw Error(ErrorKind::invalid_config,
                  fmt::format("the node timeout must be at least {} (heartbeats go every {}), got {}",
                              format_duration(kLeastNodeTimeout), format_duration(kHeartbeatInterval),
                              format_duration(timeout)));
    job_.node_timeout = timeout;
  }
  std::string lost() const override { return job_.lost() ? job_.lost_message() : std::string(); }
  [[noreturn]] void abort(int status) noexcept override {
    MPI_Abort(MPI_COMM_WORLD, status);
    std::_Exit(status);  // MPI_Abort does not return; should it, this rank still ends
  }

  int serve() override {
    if (job_.rank == 0) throw Error(ErrorKind::invalid_config, "rank 0 makes the pool; only other ranks serve()");
    return serve_as_agent(job_);
  }

  std::unique_ptr<detail::LocalPool> open_pool(const PoolOptions& options) override {
    if (job_.rank != 0)
      throw Error(ErrorKind::invalid_config,
                  fmt::format("a pool across MPI ranks is made on rank 0; rank {} must serve()", job_.rank));
    if (job_.pool_open)
      throw Error(ErrorKind::invalid_config,
                  "a pool across the MPI ranks is open already: the ranks serve one at a time, so destroy it "
                  "before making another");
    Router::open_nodes(job_, options);  // each node resolves `auto` itself
    auto local = detail::make_local_pool(job_.resolve_workers(options));
    local->set_router(std::make_unique<Router>(job_, *local, options));
    job_.pool_open = true;  // until the router goes
    return local;
  }

 private:
  Job job_;
};

}  // namespace
}  // namespace mathpool::mpi_detail

extern "C" __attribute__((visibility("default"))) mathpool::mpi_detail::Backend* mathpool_mpi_join_job(int* argc,
                                                                                                        char*** argv) {
  static_assert(std::is_same_v<decltype(&mathpool_mpi_join_job), mathpool::mpi_detail::JoinJob>);
  return new mathpool::mpi_detail::JobBackend(argc, argv);
}
