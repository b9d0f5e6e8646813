// mpi_job.cpp: joining and leaving the MPI job, and the pool across its ranks.
#include <unistd.h>

#include <climits>

#include <fmt/format.h>

#include "agent.hpp"
#include "job_impl.hpp"
#include "router.hpp"

namespace mathpool {

bool MpiJob::supported() noexcept { return true; }

MpiJob::MpiJob(int& argc, char**& argv) : impl_(std::make_unique<Impl>()) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) throw Error(ErrorKind::invalid_config, "MPI is initialised already: one MpiJob per process");
  int provided = 0;
  // One thread at a time talks to MPI: the router's while a pool is open.
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
    throw Error(ErrorKind::invalid_config, "MPI cannot start (MPI_Init_thread failed)");
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    throw Error(ErrorKind::invalid_config, "this MPI library cannot be used from more than one thread");
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &impl_->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &impl_->size);
  MPI_Comm same_machine;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &same_machine) == MPI_SUCCESS) {
    MPI_Comm_size(same_machine, &impl_->local_ranks);
    MPI_Comm_free(&same_machine);
  }
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof host - 1);
  impl_->node = host;
}

MpiJob::~MpiJob() {
  if (!impl_->finalize) return;
  if (impl_->rank == 0) {
    for (int r = 1; r < impl_->size; ++r) impl_->transport.send(r, mpi_detail::Tag::end, {});
    for (int i = 0; i < 5000 && !impl_->transport.progress(); ++i) ::usleep(1000);
  }
  MPI_Finalize();
}

int MpiJob::rank() const noexcept { return impl_->rank; }
int MpiJob::size() const noexcept { return impl_->size; }
const std::string& MpiJob::node() const noexcept { return impl_->node; }

int MpiJob::serve() {
  if (impl_->rank == 0) throw Error(ErrorKind::invalid_config, "rank 0 makes the pool; only other ranks serve()");
  return mpi_detail::serve_as_agent(*impl_);
}

void MpiJob::abandon() noexcept { impl_->finalize = false; }

Pool::Pool(MpiJob& job, PoolOptions options) {
  if (job.rank() != 0)
    throw Error(ErrorKind::invalid_config,
                fmt::format("a pool across MPI ranks is made on rank 0; rank {} must serve()", job.rank()));
  mpi_detail::Router::open_nodes(job.impl(), options);  // each node resolves `auto` itself
  auto local = std::make_unique<Impl>(job.impl().resolve_workers(options));
  local->set_router(std::make_unique<mpi_detail::Router>(job.impl(), *local, options));
  impl_ = std::move(local);
}

}  // namespace mathpool
